package main

deny contains msg if {
	input.metadata.labels.env == "production"
	input.spec.ssl != "enabled"
	msg := sprintf("%s: ssl must be enabled in production", [input.metadata.name])
}

warn contains msg if {
	not data.teams[input.metadata.labels.team]
	msg := sprintf("%s: unknown team", [input.metadata.name])
}

level := "high" if input.spec.ssl == "disabled"

level := "low" if input.metadata.labels.env == "dev"
