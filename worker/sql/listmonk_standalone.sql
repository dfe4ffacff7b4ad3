-- listmonk-shaped tables for senders without listmonk (bounce-worker migrate --standalone).
-- Names, types, constraints and indexes follow listmonk's schema (v2.5 to v6.x) for the
-- tables the worker reads and writes; campaigns carries only the columns listmonk requires
-- on insert plus the ones the bounce API shows. Applied only when `subscribers` is absent.

CREATE TYPE list_type AS ENUM ('public', 'private', 'temporary');
CREATE TYPE list_optin AS ENUM ('single', 'double');
CREATE TYPE subscriber_status AS ENUM ('enabled', 'disabled', 'blocklisted');
CREATE TYPE subscription_status AS ENUM ('unconfirmed', 'confirmed', 'unsubscribed');
CREATE TYPE campaign_status AS ENUM ('draft', 'running', 'scheduled', 'paused', 'cancelled', 'finished');
CREATE TYPE campaign_type AS ENUM ('regular', 'optin');
CREATE TYPE content_type AS ENUM ('richtext', 'html', 'plain', 'markdown', 'visual');
CREATE TYPE bounce_type AS ENUM ('soft', 'hard', 'complaint');

CREATE TABLE subscribers (
    id          SERIAL PRIMARY KEY,
    uuid        UUID NOT NULL UNIQUE,
    email       TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    attribs     JSONB NOT NULL DEFAULT '{}',
    status      subscriber_status NOT NULL DEFAULT 'enabled',
    created_at  TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at  TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);
CREATE UNIQUE INDEX idx_subs_email ON subscribers(LOWER(email));
CREATE INDEX idx_subs_status ON subscribers(status);

CREATE TABLE lists (
    id          SERIAL PRIMARY KEY,
    uuid        UUID NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    type        list_type NOT NULL,
    optin       list_optin NOT NULL DEFAULT 'single',
    tags        VARCHAR(100)[],
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at  TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

CREATE TABLE subscriber_lists (
    subscriber_id INTEGER REFERENCES subscribers(id) ON DELETE CASCADE ON UPDATE CASCADE,
    list_id       INTEGER NULL REFERENCES lists(id) ON DELETE CASCADE ON UPDATE CASCADE,
    meta          JSONB NOT NULL DEFAULT '{}',
    status        subscription_status NOT NULL DEFAULT 'unconfirmed',
    created_at    TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at    TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    PRIMARY KEY(subscriber_id, list_id)
);
CREATE INDEX idx_sub_lists_sub_id ON subscriber_lists(subscriber_id);
CREATE INDEX idx_sub_lists_list_id ON subscriber_lists(list_id);
CREATE INDEX idx_sub_lists_status ON subscriber_lists(status);

CREATE TABLE campaigns (
    id           SERIAL PRIMARY KEY,
    uuid         UUID NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    from_email   TEXT NOT NULL,
    body         TEXT NOT NULL,
    altbody      TEXT NULL,
    content_type content_type NOT NULL DEFAULT 'richtext',
    send_at      TIMESTAMP WITH TIME ZONE NULL,
    headers      JSONB NOT NULL DEFAULT '[]',
    status       campaign_status NOT NULL DEFAULT 'draft',
    tags         VARCHAR(100)[],
    type         campaign_type DEFAULT 'regular',
    messenger    TEXT NOT NULL,
    to_send      INT NOT NULL DEFAULT 0,
    sent         INT NOT NULL DEFAULT 0,
    started_at   TIMESTAMP WITH TIME ZONE NULL,
    created_at   TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at   TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

CREATE TABLE bounces (
    id            SERIAL PRIMARY KEY,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE ON UPDATE CASCADE,
    campaign_id   INTEGER NULL REFERENCES campaigns(id) ON DELETE SET NULL ON UPDATE CASCADE,
    type          bounce_type NOT NULL DEFAULT 'hard',
    source        TEXT NOT NULL DEFAULT '',
    meta          JSONB NOT NULL DEFAULT '{}',
    created_at    TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_bounces_sub_id ON bounces(subscriber_id);
CREATE INDEX idx_bounces_camp_id ON bounces(campaign_id);
CREATE INDEX idx_bounces_source ON bounces(source);
CREATE INDEX idx_bounces_date ON bounces((TIMEZONE('UTC', created_at)::DATE));
