CREATE TABLE gproc_meta (
	key VARCHAR(64) NOT NULL, 
	value VARCHAR NOT NULL, 
	PRIMARY KEY (key)
);

CREATE TABLE task_events (
	id SERIAL NOT NULL, 
	task_id VARCHAR(32) NOT NULL, 
	time TIMESTAMP WITH TIME ZONE NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	state VARCHAR(16), 
	detail VARCHAR NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_task_events_task_id ON task_events (task_id);

CREATE TABLE tasks (
	id VARCHAR(32) NOT NULL, 
	client_request_id VARCHAR(128), 
	owner_dn VARCHAR(512) NOT NULL, 
	owner_vo VARCHAR(128), 
	owner_fqans VARCHAR NOT NULL, 
	tool VARCHAR(64) NOT NULL, 
	request_json VARCHAR NOT NULL, 
	plan_json VARCHAR NOT NULL, 
	job_description VARCHAR NOT NULL, 
	accounting_group VARCHAR(128), 
	x509_proxy VARCHAR, 
	state VARCHAR(16) NOT NULL, 
	state_reason VARCHAR, 
	attempt INTEGER NOT NULL, 
	wms VARCHAR(32) NOT NULL, 
	job_id VARCHAR(256), 
	hold_reason VARCHAR, 
	hold_code INTEGER, 
	exit_code INTEGER, 
	outputs_json VARCHAR, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	submitted_at TIMESTAMP WITH TIME ZONE, 
	started_at TIMESTAMP WITH TIME ZONE, 
	finished_at TIMESTAMP WITH TIME ZONE, 
	retrieved_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_owner_request UNIQUE (owner_dn, client_request_id)
);

CREATE INDEX ix_tasks_created_at ON tasks (created_at);

CREATE INDEX ix_tasks_job_id ON tasks (job_id);

CREATE INDEX ix_tasks_owner_dn ON tasks (owner_dn);

CREATE INDEX ix_tasks_owner_vo ON tasks (owner_vo);

CREATE INDEX ix_tasks_state ON tasks (state);

CREATE INDEX ix_tasks_tool ON tasks (tool);

CREATE TABLE vo_audit (
	id SERIAL NOT NULL, 
	time TIMESTAMP WITH TIME ZONE NOT NULL, 
	actor VARCHAR(512) NOT NULL, 
	vo VARCHAR(64) NOT NULL, 
	action VARCHAR(32) NOT NULL, 
	target VARCHAR(600) NOT NULL, 
	detail VARCHAR NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_vo_audit_time ON vo_audit (time);

CREATE INDEX ix_vo_audit_vo ON vo_audit (vo);

CREATE TABLE vo_vos (
	name VARCHAR(64) NOT NULL, 
	description VARCHAR(500) NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (name)
);

CREATE TABLE vo_groups (
	id SERIAL NOT NULL, 
	vo VARCHAR(64) NOT NULL, 
	path VARCHAR(512) NOT NULL, 
	description VARCHAR(500) NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_vo_group UNIQUE (vo, path), 
	FOREIGN KEY(vo) REFERENCES vo_vos (name)
);

CREATE INDEX ix_vo_groups_vo ON vo_groups (vo);

CREATE TABLE vo_members (
	id SERIAL NOT NULL, 
	vo VARCHAR(64) NOT NULL, 
	dn VARCHAR(512) NOT NULL, 
	ca_dn VARCHAR(512) NOT NULL, 
	dn_key VARCHAR(600) NOT NULL, 
	ca_key VARCHAR(600) NOT NULL, 
	email VARCHAR(254), 
	suspended BOOLEAN NOT NULL, 
	suspended_reason VARCHAR(500), 
	suspended_at TIMESTAMP WITH TIME ZONE, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_vo_member UNIQUE (vo, dn_key, ca_key), 
	FOREIGN KEY(vo) REFERENCES vo_vos (name)
);

CREATE INDEX ix_vo_members_dn_key ON vo_members (dn_key);

CREATE INDEX ix_vo_members_vo ON vo_members (vo);

CREATE TABLE vo_roles (
	id SERIAL NOT NULL, 
	vo VARCHAR(64) NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	description VARCHAR(500) NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_vo_role UNIQUE (vo, name), 
	FOREIGN KEY(vo) REFERENCES vo_vos (name)
);

CREATE INDEX ix_vo_roles_vo ON vo_roles (vo);

CREATE TABLE vo_memberships (
	id SERIAL NOT NULL, 
	member_id INTEGER NOT NULL, 
	group_path VARCHAR(512) NOT NULL, 
	role VARCHAR(64) NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_vo_membership UNIQUE (member_id, group_path, role), 
	FOREIGN KEY(member_id) REFERENCES vo_members (id)
);

CREATE INDEX ix_vo_memberships_member_id ON vo_memberships (member_id);
