# Messages between the reconciler and the guest agents carry certificates'
# private keys: outside dev they must be encrypted.
package main

rpc_plaintext_allowed if env in data.encryption.rpc_plaintext_allowed

deny_rpc_encryption contains msg if {
	not rpc_plaintext_allowed
	object.get(input.spec, "rpcEncryption", "disabled") != "enabled"
	msg := sprintf("%s: rpcEncryption must be enabled outside %s", [input.metadata.name, concat(", ", data.encryption.rpc_plaintext_allowed)])
}
