package main

mysql_prod := {
	"metadata": {"name": "orders-db", "labels": {"env": "production"}},
	"spec": {"datastore": {"type": "mysql"}, "hosts": ["orders-db.db.internal"], "ssl": "enabled", "rpcEncryption": "enabled", "tls": {"minVersion": "1.3"}},
}

test_production_mysql_with_ssl_passes if {
	count(deny_ssl_required) == 0 with input as mysql_prod
	count(warn_tls_version) == 0 with input as mysql_prod
}

test_production_mysql_without_ssl_denied if {
	deny_ssl_required["orders-db: mysql in production must have ssl: enabled"] with input as json.patch(mysql_prod, [{"op": "replace", "path": "/spec/ssl", "value": "disabled"}])
}

test_staging_postgresql_may_stay_plaintext if {
	inst := json.patch(mysql_prod, [
		{"op": "replace", "path": "/spec/ssl", "value": "disabled"},
		{"op": "replace", "path": "/spec/datastore/type", "value": "postgresql"},
		{"op": "replace", "path": "/metadata/labels/env", "value": "staging"},
	])
	count(deny_ssl_required) == 0 with input as inst
}

test_unknown_environment_denied if {
	count(deny_environment) == 1 with input as json.patch(mysql_prod, [{"op": "replace", "path": "/metadata/labels/env", "value": "prod"}])
}

test_tls12_in_production_warns if {
	count(warn_tls_version) == 1 with input as json.patch(mysql_prod, [{"op": "remove", "path": "/spec/tls"}])
}

test_critical_without_owner_violates if {
	inst := json.patch(mysql_prod, [{"op": "add", "path": "/metadata/labels/tier", "value": "critical"}])
	some v in violation_owner with input as inst
	v.severity == "high"
}
