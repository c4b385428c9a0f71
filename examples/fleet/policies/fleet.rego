# Fleet-scope rules: input.instances is every instance document. A result
# with "instances" denies those instances; one without concerns the fleet.
package fleet

deny_shared_host contains {"msg": msg, "instances": names} if {
	some inst in input.instances
	some host in inst.spec.hosts
	names := sort([other.metadata.name | some other in input.instances; host in other.spec.hosts])
	count(names) > 1
	msg := sprintf("host %s is claimed by %s; a certificate must belong to one instance", [host, concat(" and ", names)])
}

production := [i | some i in input.instances; i.metadata.labels.env == "production"]

encrypted := [i | some i in production; i.spec.ssl == "enabled"]

warn_production_coverage contains msg if {
	count(production) > 0
	percent := round((100 * count(encrypted)) / count(production))
	percent < 95
	msg := sprintf("only %d%% of production instances serve TLS; the target is 95%%", [percent])
}
