# The agent-load fleet's policy: a guest agent can only enroll and poll
# sealed when its instance has an RPC key, so an instance without RPC
# encryption is a mistake in the benchmark's fleet. A warning keeps the
# warn path of the evaluation busy too, as in a real fleet.
package main

deny_rpc_required contains msg if {
	input.spec.rpcEncryption != "enabled"
	msg := sprintf("%s: the agent load needs rpcEncryption: enabled", [input.metadata.name])
}

warn_tls_version contains msg if {
	input.spec.ssl == "enabled"
	object.get(input.spec, ["tls", "minVersion"], "1.2") != "1.3"
	msg := sprintf("%s: prefer TLS 1.3", [input.metadata.name])
}
