-- Platform tables (services/platform/src/outbox.rs, consumer.rs), MySQL / MariaDB.
-- Versions 1000000000000x are the platform's; services use timestamps.
CREATE TABLE IF NOT EXISTS outbox (
    id            BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id      CHAR(36) NOT NULL,
    topic         VARCHAR(255) NOT NULL,
    partition_key VARCHAR(255) NOT NULL,
    event_type    VARCHAR(128) NOT NULL,
    payload       LONGTEXT NOT NULL,
    trace_carrier TEXT NULL,
    created_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    sent_at       TIMESTAMP(6) NULL DEFAULT NULL,
    UNIQUE KEY outbox_event_id (event_id),
    KEY outbox_unsent (sent_at, id),
    KEY outbox_unsent_key (partition_key, sent_at, id)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS processed_events (
    consumer     VARCHAR(128) NOT NULL,
    event_id     CHAR(36) NOT NULL,
    processed_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (consumer, event_id)
) ENGINE = InnoDB;
