# Time-boxed exceptions granted by the security team. Each names the rule
# suffixes it exempts (deny_rpc_encryption -> "rpc_encryption") and cites
# its ticket in the instance's annotations.
package main

exception contains rules if {
	input.metadata.name == "legacy-reports"
	startswith(input.metadata.annotations.exception, "SEC-1432")
	rules := ["rpc_encryption"]
}
