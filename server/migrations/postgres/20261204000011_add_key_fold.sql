-- Keys are compared in one form, `key_fold` (app::entities::keys::fold_key): trimmed, in
-- Unicode NFC and, for names (tools, gateways, servers, prompts), lower-cased, so that
-- `Greeting` cannot be stored beside `greeting`. URIs (resources, roots) keep their case.
-- The gateway writes it on every insert and update. Rows stored before get it here when
-- their key is printable ASCII (where the fold is plain trimming and lower-casing) and no
-- other row of the table folds the same; the others keep NULL, which the unique index
-- allows: they still load and export as they are, and their next write sets it.

ALTER TABLE tools ADD COLUMN key_fold TEXT;
UPDATE tools SET key_fold = lower(btrim(key, ' ') COLLATE "C")
WHERE key ~ '^[ -~]*$'
  AND lower(btrim(key, ' ') COLLATE "C") IN (SELECT lower(btrim(key, ' ') COLLATE "C") FROM tools GROUP BY lower(btrim(key, ' ') COLLATE "C") HAVING COUNT(*) = 1);
CREATE UNIQUE INDEX tools_key_fold ON tools (key_fold);

ALTER TABLE gateways ADD COLUMN key_fold TEXT;
UPDATE gateways SET key_fold = lower(btrim(key, ' ') COLLATE "C")
WHERE key ~ '^[ -~]*$'
  AND lower(btrim(key, ' ') COLLATE "C") IN (SELECT lower(btrim(key, ' ') COLLATE "C") FROM gateways GROUP BY lower(btrim(key, ' ') COLLATE "C") HAVING COUNT(*) = 1);
CREATE UNIQUE INDEX gateways_key_fold ON gateways (key_fold);

ALTER TABLE servers ADD COLUMN key_fold TEXT;
UPDATE servers SET key_fold = lower(btrim(key, ' ') COLLATE "C")
WHERE key ~ '^[ -~]*$'
  AND lower(btrim(key, ' ') COLLATE "C") IN (SELECT lower(btrim(key, ' ') COLLATE "C") FROM servers GROUP BY lower(btrim(key, ' ') COLLATE "C") HAVING COUNT(*) = 1);
CREATE UNIQUE INDEX servers_key_fold ON servers (key_fold);

ALTER TABLE prompts ADD COLUMN key_fold TEXT;
UPDATE prompts SET key_fold = lower(btrim(key, ' ') COLLATE "C")
WHERE key ~ '^[ -~]*$'
  AND lower(btrim(key, ' ') COLLATE "C") IN (SELECT lower(btrim(key, ' ') COLLATE "C") FROM prompts GROUP BY lower(btrim(key, ' ') COLLATE "C") HAVING COUNT(*) = 1);
CREATE UNIQUE INDEX prompts_key_fold ON prompts (key_fold);

ALTER TABLE resources ADD COLUMN key_fold TEXT;
UPDATE resources SET key_fold = btrim(key, ' ')
WHERE key ~ '^[ -~]*$'
  AND btrim(key, ' ') IN (SELECT btrim(key, ' ') FROM resources GROUP BY btrim(key, ' ') HAVING COUNT(*) = 1);
CREATE UNIQUE INDEX resources_key_fold ON resources (key_fold);

ALTER TABLE roots ADD COLUMN key_fold TEXT;
UPDATE roots SET key_fold = btrim(key, ' ')
WHERE key ~ '^[ -~]*$'
  AND btrim(key, ' ') IN (SELECT btrim(key, ' ') FROM roots GROUP BY btrim(key, ' ') HAVING COUNT(*) = 1);
CREATE UNIQUE INDEX roots_key_fold ON roots (key_fold);
