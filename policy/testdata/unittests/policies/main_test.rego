package main

plaintext_prod := {"metadata": {"name": "orders-db", "labels": {"env": "production", "team": "payments"}}, "spec": {"ssl": "disabled"}}

test_plaintext_production_is_denied if {
	deny["orders-db: ssl must be enabled in production"] with input as plaintext_prod
}

test_known_team_reads_data if {
	count(warn) == 0 with input as plaintext_prod
}

test_wrong_expectation if {
	print("checking", plaintext_prod.metadata.name)
	count(deny) == 2 with input as plaintext_prod
}

test_conflicting_level if {
	level == "high" with input as {"metadata": {"labels": {"env": "dev"}}, "spec": {"ssl": "disabled"}}
}

todo_test_rpc_encryption if {
	false
}

test_envs[env] if {
	some env in ["production", "staging"]
	count(deny) == 1 with input as {"metadata": {"name": "x", "labels": {"env": env}}, "spec": {"ssl": "disabled"}}
}
