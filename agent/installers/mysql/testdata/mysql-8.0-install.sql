SET GLOBAL ssl_ca = '/etc/mysql/conf.d/reconciler-ca.pem';
SET GLOBAL ssl_cert = '/etc/mysql/conf.d/reconciler-server-cert.pem';
SET GLOBAL ssl_key = '/etc/mysql/conf.d/reconciler-server-key.pem';
SET GLOBAL tls_version = 'TLSv1.2,TLSv1.3';
ALTER INSTANCE RELOAD TLS;
SET GLOBAL require_secure_transport = ON;
