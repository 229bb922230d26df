-- APOGÉE dev/test stand-in (PostgreSQL): the tables and columns the reconciler reads,
-- named as in APOGÉE (Oracle schema APOGEE); see ../shared/reference/apogee.md.
-- Types follow the Oracle ones: NUMBER(n) -> integer/smallint, VARCHAR2 -> varchar, DATE -> date.
-- Foreign keys are left out on purpose: APOGÉE edits delete and re-insert contract rows in one
-- transaction and the test workloads replay such edits in any order.
-- Idempotent: safe to run on every `stack up`. Runs as the schema owner (role apogee).

CREATE SCHEMA IF NOT EXISTS apogee;

CREATE TABLE IF NOT EXISTS apogee.individu (
    cod_ind         integer      PRIMARY KEY,          -- NUMBER(8)
    cod_etu         integer      UNIQUE,               -- NUMBER(8), NULL until a student number is issued
    lib_nom_pat_ind varchar(30),
    lib_nom_usu_ind varchar(30),
    lib_pr1_ind     varchar(20),
    cod_nne_ind     varchar(10)
);

CREATE TABLE IF NOT EXISTS apogee.version_etape (
    cod_etp     varchar(6)  NOT NULL,
    cod_vrs_vet smallint    NOT NULL,                  -- NUMBER(3)
    lib_web_vet varchar(120),
    PRIMARY KEY (cod_etp, cod_vrs_vet)
);

CREATE TABLE IF NOT EXISTS apogee.element_pedagogi (
    cod_elp     varchar(8)  PRIMARY KEY,
    lib_elp     varchar(60),
    lic_elp     varchar(25),
    cod_nel     varchar(4),                            -- UE, MATI, CM, TD…
    cod_cmp     varchar(3),
    eta_elp     varchar(1),
    tem_sus_elp varchar(1)
);

CREATE TABLE IF NOT EXISTS apogee.ins_adm_etp (
    cod_anu       varchar(4)  NOT NULL,
    cod_ind       integer     NOT NULL,
    cod_etp       varchar(6)  NOT NULL,
    cod_vrs_vet   smallint    NOT NULL,
    num_occ_iae   smallint    NOT NULL,                -- NUMBER(2)
    cod_dip       varchar(7),
    cod_vrs_vdi   smallint,
    eta_iae       varchar(1)  NOT NULL CHECK (eta_iae IN ('E', 'A')),
    eta_pmt_iae   varchar(1),
    tem_iae_prm   varchar(1),
    dat_cre_iae   date,
    dat_annul_iae date,
    PRIMARY KEY (cod_anu, cod_ind, cod_etp, cod_vrs_vet, num_occ_iae)
);

CREATE TABLE IF NOT EXISTS apogee.ind_contrat_elp (
    cod_anu     varchar(4)  NOT NULL,
    cod_ind     integer     NOT NULL,
    cod_etp     varchar(6)  NOT NULL,
    cod_vrs_vet smallint    NOT NULL,
    cod_elp     varchar(8)  NOT NULL,
    cod_lse     varchar(8),
    tem_prc_ice varchar(1)  NOT NULL CHECK (tem_prc_ice IN ('O', 'N')),
    dat_mod_ice date,
    PRIMARY KEY (cod_anu, cod_ind, cod_etp, cod_vrs_vet, cod_elp)
);

-- Full before-images on update/delete (Debezium otherwise sends only the key).
ALTER TABLE apogee.individu         REPLICA IDENTITY FULL;
ALTER TABLE apogee.version_etape    REPLICA IDENTITY FULL;
ALTER TABLE apogee.element_pedagogi REPLICA IDENTITY FULL;
ALTER TABLE apogee.ins_adm_etp      REPLICA IDENTITY FULL;
ALTER TABLE apogee.ind_contrat_elp  REPLICA IDENTITY FULL;

-- Written by the connector's heartbeat.action.query so a quiet database still moves its LSN.
CREATE TABLE IF NOT EXISTS apogee.debezium_heartbeat (
    id integer PRIMARY KEY,
    ts timestamptz NOT NULL DEFAULT now()
);
INSERT INTO apogee.debezium_heartbeat (id) VALUES (1) ON CONFLICT (id) DO NOTHING;
