-- routers and floatingips: the network service's L3 records (Neutron's
-- routers and floatingips tables), one row per record, keyed by its uuid.
-- A router's gateway and interface ports are rows of ports (device_id the
-- router); a floating IP holds its address through a port of its own on
-- the external network, so ip_allocations keeps floating addresses
-- unique as it keeps fixed ones. The project is a column (the router and
-- floatingip quotas are counted from the rows in the transaction that
-- adds one); a floating IP's association is columns too, fixed_key
-- (external network, port, fixed address) counted so that a fixed address
-- has one floating IP per external network.
CREATE TABLE routers (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    project_id TEXT,
    name TEXT,
    gw_network_id TEXT,
    gw_port_id TEXT,
    body JSON NOT NULL
);
CREATE INDEX routers_project_id ON routers (project_id);
CREATE INDEX routers_gw_network_id ON routers (gw_network_id);
CREATE TABLE floatingips (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    project_id TEXT,
    floating_network_id TEXT,
    floating_ip_address TEXT,
    floating_port_id TEXT,
    fixed_port_id TEXT,
    fixed_ip_address TEXT,
    router_id TEXT,
    fixed_key TEXT,
    body JSON NOT NULL
);
CREATE INDEX floatingips_project_id ON floatingips (project_id);
CREATE INDEX floatingips_fixed_port_id ON floatingips (fixed_port_id);
CREATE INDEX floatingips_router_id ON floatingips (router_id);
CREATE INDEX floatingips_fixed_key ON floatingips (fixed_key);
CREATE UNIQUE INDEX floatingips_address ON floatingips (floating_network_id, floating_ip_address);
