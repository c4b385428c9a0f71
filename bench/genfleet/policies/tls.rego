# The benchmark's policy: three rules in conftest's conventions (package
# main; deny_* rules fail an instance, warn_* rules only report), so that
# reconciler diff, conftest and the bare loop evaluate the very same thing.
package main

env := object.get(input.metadata, ["labels", "env"], "")

deny_ssl_required contains msg if {
	env == "production"
	input.spec.datastore.type in data.encryption.ssl_required
	input.spec.ssl != "enabled"
	msg := sprintf("%s: %s in production must have ssl: enabled", [input.metadata.name, input.spec.datastore.type])
}

# rpcEncryption defaults to disabled, so an instance that omits it is denied
# as well.
deny_rpc_encryption contains msg if {
	env != "dev"
	object.get(input.spec, "rpcEncryption", "disabled") != "enabled"
	msg := sprintf("%s: rpcEncryption must be enabled outside dev", [input.metadata.name])
}

warn_tls_version contains msg if {
	env == "production"
	input.spec.ssl == "enabled"
	object.get(input.spec, ["tls", "minVersion"], "1.2") != "1.3"
	msg := sprintf("%s: production should accept TLS 1.3 only (spec.tls.minVersion: \"1.3\")", [input.metadata.name])
}
