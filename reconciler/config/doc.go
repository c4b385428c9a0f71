// Package config is the `reconciler run` daemon's configuration file:
// where the fleet comes from, which policies guard it, which key provider
// issues certificates and RPC keys, where state is kept, what it listens
// on and who may call its API.
//
// Parsing is as strict as the instance files: unknown fields, wrong
// types and invalid values are errors that name the file, the line and
// the field, and say how to fix it. Secrets never sit in the file itself:
// the Vault secret-id, the webhook secret, the API tokens and the KEK are
// read from files (or the environment) it names, so the configuration can
// live in git.
//
// What newcomers get wrong: paths in the file are relative to the file's
// own directory, not to the daemon's working directory, so a config and
// its neighbours can move together.
package config
