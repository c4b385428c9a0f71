# Fleet-scope rules: evaluated once with input.instances.
package fleet

# No two instances may share a host.
deny_shared_host contains {"msg": msg, "instances": names} if {
	some host in {h | some i in input.instances; some h in i.spec.hosts}
	names := sort([i.metadata.name | some i in input.instances; host in i.spec.hosts])
	count(names) > 1
	msg := sprintf("host %s is shared by %s", [host, concat(", ", names)])
}

# Encryption coverage of production.
warn_coverage contains msg if {
	prod := [i | some i in input.instances; i.metadata.labels.env == "production"]
	count(prod) > 0
	enabled := count([i | some i in prod; i.spec.ssl == "enabled"])
	enabled * 100 < count(prod) * 95
	msg := sprintf("ssl coverage of production is %d of %d instances, below 95%%", [enabled, count(prod)])
}
