-- Mailbox scanning state.

-- Messages a scan read and deliberately left in the mailbox (auto-replies, human replies,
-- newsletters, anything that is not a bounce or a complaint): remembered so that the next
-- scan neither downloads nor classifies them again. `mailbox` is the mailbox's identity
-- (protocol, user, host, port, folder), not its display name, so renaming a mailbox in the
-- configuration does not make old mail look new. `message_id` is the POP3 UIDL or the
-- IMAP `UIDVALIDITY:UID`. Rows of messages that have left the mailbox are pruned by the
-- next scan.
CREATE TABLE bounceops.mailbox_kept (
    mailbox    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    kept_at    TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (mailbox, message_id)
);
