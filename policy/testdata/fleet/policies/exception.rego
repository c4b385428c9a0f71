package main

# legacy-db cannot run encrypted RPC until its agent is upgraded.
exception contains ["rpc"] if input.metadata.name == "legacy-db"

# Instances labelled exempt are excepted from every unsuffixed rule.
exception contains [""] if input.metadata.labels.exempt == "true"
