package main

deny contains "no name" if not input.name

deny_blocked contains msg if {
	input.name in data.lists.blocked
	msg := sprintf("%s is blocked", [input.name])
}

warn_two contains "a" if input.name
warn_two contains "b" if input.name

violation_x contains {"msg": "x"} if input.x

# Not a rule kind: never counted.
allow if input.name
