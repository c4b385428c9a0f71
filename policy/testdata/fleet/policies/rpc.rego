package prod.rpc

warn_agent contains sprintf("%s: rpc encryption is off", [input.metadata.name]) if {
	input.spec.rpcEncryption == "disabled"
}
