package tls

test_always if true
