// Package confedit edits datastore configuration files the way an
// operator would, byte for byte: a managed block between marker comments
// replaces an entry and keeps the original inside it as comments, so
// removing the block restores the file exactly. The installers of
// datastores without an include directive (MongoDB, Cassandra, Manticore)
// use it; YAML entries are found by indentation without re-encoding the
// file, which would lose its comments and layout.
package confedit
