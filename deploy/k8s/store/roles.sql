-- The store's two roles (carprice store roles). Run once per database as an
-- administrator: psql -v ON_ERROR_STOP=1 -v runtime_password=... \
--   -v migration_password=... -f roles.sql
SELECT 'CREATE ROLE carprice_migrate' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'carprice_migrate') \gexec
ALTER ROLE carprice_migrate WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'migration_password';
SELECT 'CREATE ROLE carprice_runtime' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'carprice_runtime') \gexec
ALTER ROLE carprice_runtime WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'runtime_password';
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO carprice_migrate, carprice_runtime', current_database()) \gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO carprice_migrate;
REVOKE CREATE ON SCHEMA public FROM carprice_runtime;
GRANT USAGE ON SCHEMA public TO carprice_runtime;
