package main

test_production_without_ssl_is_denied if {
	deny["orders-db: production instances must have ssl enabled"] with input as {
		"metadata": {"name": "orders-db", "labels": {"env": "production"}},
		"spec": {"ssl": "disabled", "hosts": ["a"]},
	}
}

test_known_team_is_not_warned if {
	count(warn) == 0 with input as {"metadata": {"name": "a", "labels": {"team": "payments"}}}
}
