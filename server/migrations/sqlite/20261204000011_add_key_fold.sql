-- Keys are compared in one form, `key_fold` (app::entities::keys::fold_key): trimmed, in
-- Unicode NFC and, for names (tools, gateways, servers, prompts), lower-cased, so that
-- `Greeting` cannot be stored beside `greeting`. URIs (resources, roots) keep their case.
-- The gateway writes it on every insert and update. Rows stored before get it here when
-- their key is printable ASCII (where the fold is plain trimming and lower-casing) and no
-- other row of the table folds the same; the others keep NULL, which the unique index
-- allows: they still load and export as they are, and their next write sets it.

ALTER TABLE tools ADD COLUMN key_fold TEXT;
UPDATE tools SET key_fold = lower(trim(key))
WHERE key NOT GLOB '*[^ -~]*'
  AND lower(trim(key)) IN (SELECT lower(trim(key)) FROM tools GROUP BY lower(trim(key)) HAVING COUNT(*) = 1);
CREATE UNIQUE INDEX tools_key_fold ON tools (key_fold);

ALTER TABLE gateways ADD COLUMN key_fold TEXT;
UPDATE gateways SET key_fold = lower(trim(key))
WHERE key NOT GLOB '*[^ -~]*'
  AND lower(trim(key)) IN (SELECT lower(trim(key)) FROM gateways GROUP BY lower(trim(key)) HAVING COUNT(*) = 1);
CREATE UNIQUE INDEX gateways_key_fold ON gateways (key_fold);

ALTER TABLE servers ADD COLUMN key_fold TEXT;
UPDATE servers SET key_fold = lower(trim(key))
WHERE key NOT GLOB '*[^ -~]*'
  AND lower(trim(key)) IN (SELECT lower(trim(key)) FROM servers GROUP BY lower(trim(key)) HAVING COUNT(*) = 1);
CREATE UNIQUE INDEX servers_key_fold ON servers (key_fold);

ALTER TABLE prompts ADD COLUMN key_fold TEXT;
UPDATE prompts SET key_fold = lower(trim(key))
WHERE key NOT GLOB '*[^ -~]*'
  AND lower(trim(key)) IN (SELECT lower(trim(key)) FROM prompts GROUP BY lower(trim(key)) HAVING COUNT(*) = 1);
CREATE UNIQUE INDEX prompts_key_fold ON prompts (key_fold);

ALTER TABLE resources ADD COLUMN key_fold TEXT;
UPDATE resources SET key_fold = trim(key)
WHERE key NOT GLOB '*[^ -~]*'
  AND trim(key) IN (SELECT trim(key) FROM resources GROUP BY trim(key) HAVING COUNT(*) = 1);
CREATE UNIQUE INDEX resources_key_fold ON resources (key_fold);

ALTER TABLE roots ADD COLUMN key_fold TEXT;
UPDATE roots SET key_fold = trim(key)
WHERE key NOT GLOB '*[^ -~]*'
  AND trim(key) IN (SELECT trim(key) FROM roots GROUP BY trim(key) HAVING COUNT(*) = 1);
CREATE UNIQUE INDEX roots_key_fold ON roots (key_fold);
