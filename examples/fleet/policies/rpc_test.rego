package main

staging_plain := {
	"metadata": {"name": "legacy-x", "labels": {"env": "staging"}},
	"spec": {"datastore": {"type": "manticore"}, "hosts": ["x.staging.internal"], "ssl": "disabled"},
}

test_rpc_plaintext_outside_dev_denied if {
	count(deny_rpc_encryption) == 1 with input as staging_plain
}

test_rpc_plaintext_in_dev_allowed if {
	count(deny_rpc_encryption) == 0 with input as json.patch(staging_plain, [{"op": "replace", "path": "/metadata/labels/env", "value": "dev"}])
}

test_exception_only_for_the_ticketed_instance if {
	legacy := json.patch(staging_plain, [
		{"op": "replace", "path": "/metadata/name", "value": "legacy-reports"},
		{"op": "add", "path": "/metadata/annotations", "value": {"exception": "SEC-1432, expires 2027-03-31"}},
	])
	["rpc_encryption"] in exception with input as legacy
	count(exception) == 0 with input as staging_plain
}
