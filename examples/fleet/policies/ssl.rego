# TLS rules for every instance. Conftest conventions: package main, deny_*
# rules block the merge, warn_* rules only comment.
package main

env := object.get(input.metadata, ["labels", "env"], "")

deny_ssl_required contains msg if {
	input.spec.ssl != "enabled"
	input.spec.datastore.type in data.encryption.ssl_required[env]
	msg := sprintf("%s: %s in %s must have ssl: enabled", [input.metadata.name, input.spec.datastore.type, env])
}

deny_environment contains msg if {
	not env in data.encryption.environments
	msg := sprintf("%s: label env must be one of %s", [input.metadata.name, concat(", ", data.encryption.environments)])
}

# Critical instances need someone to page when their certificate fails.
violation_owner contains {"msg": msg, "severity": "high"} if {
	input.metadata.labels.tier == "critical"
	not input.metadata.annotations.owner
	msg := sprintf("%s: critical instances need an owner annotation", [input.metadata.name])
}

warn_tls_version contains msg if {
	env == "production"
	input.spec.ssl == "enabled"
	object.get(input.spec, ["tls", "minVersion"], "1.2") != "1.3"
	msg := sprintf("%s: production should accept TLS 1.3 only (spec.tls.minVersion: \"1.3\")", [input.metadata.name])
}

warn_plaintext contains msg if {
	env == "dev"
	input.spec.ssl == "disabled"
	msg := sprintf("%s: serves plaintext; fine for dev, never with real data", [input.metadata.name])
}
