package postgresql_test

import "crypto/tls"

// tlsConfigInsecure reads the served certificate without judging it; the
// tests compare serials themselves.
var tlsConfigInsecure = tls.Config{InsecureSkipVerify: true}
