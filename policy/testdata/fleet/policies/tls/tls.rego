package prod.tls

import data.lib.helpers.min_version

deny_min_version contains {"msg": msg, "minimum": want} if {
	input.metadata.labels.env == "production"
	want := data.tls.minimum[input.spec.datastore.type]
	min_version(input) < want
	msg := sprintf("%s: tls.minVersion %v is below %v for %s", [input.metadata.name, min_version(input), want, input.spec.datastore.type])
}
