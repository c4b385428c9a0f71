package fleet

inst(name, env, ssl, hosts) := {"metadata": {"name": name, "labels": {"env": env}}, "spec": {"hosts": hosts, "ssl": ssl}}

test_shared_host_names_both_instances if {
	fleet := {"instances": [inst("a", "dev", "enabled", ["h.internal"]), inst("b", "dev", "enabled", ["h.internal", "b.internal"])]}
	some d in deny_shared_host with input as fleet
	d.instances == ["a", "b"]
}

test_distinct_hosts_pass if {
	fleet := {"instances": [inst("a", "dev", "enabled", ["a.internal"]), inst("b", "dev", "enabled", ["b.internal"])]}
	count(deny_shared_host) == 0 with input as fleet
}

test_low_production_coverage_warns if {
	fleet := {"instances": [inst("a", "production", "enabled", ["a.internal"]), inst("b", "production", "disabled", ["b.internal"])]}
	warn_production_coverage["only 50% of production instances serve TLS; the target is 95%"] with input as fleet
}
