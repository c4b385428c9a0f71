# A library package without rules: never a namespace to evaluate.
package lib.helpers

min_version(doc) := v if {
	v := doc.spec.tls.minVersion
} else := "1.2"
