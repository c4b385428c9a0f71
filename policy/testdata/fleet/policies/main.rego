# Per-instance rules in conftest's default namespace.
package main

production if input.metadata.labels.env == "production"

deny contains msg if {
	production
	input.spec.ssl != "enabled"
	msg := sprintf("%s: production instances must have ssl enabled", [input.metadata.name])
}

deny_hosts contains msg if {
	count(object.get(input.spec, "hosts", [])) == 0
	msg := sprintf("%s: spec.hosts must name at least one host", [input.metadata.name])
}

violation_rpc contains {"msg": msg, "severity": "high", "team": team} if {
	input.spec.rpcEncryption == "disabled"
	input.metadata.labels.env != "dev"
	team := object.get(input.metadata.labels, "team", "none")
	msg := sprintf("%s: rpcEncryption is required outside dev", [input.metadata.name])
}

warn_ttl contains msg if {
	not input.spec.tls.ttl
	msg := sprintf("%s: spec.tls.ttl is not set; the configured default applies", [input.metadata.name])
}

warn contains msg if {
	not data.teams[input.metadata.labels.team]
	msg := sprintf("%s: team %v is not in teams.yaml", [input.metadata.name, input.metadata.labels.team])
}
