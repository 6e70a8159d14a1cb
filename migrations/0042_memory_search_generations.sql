-- 0042_memory_search_generations: a change counter per (user, memory type, embedding model), so a node may keep a
-- large user's sign bits in its own memory and know, in the statement that searches, whether they are current
-- (issue #28; isa/memory/local_index.py, docs/memory.md "Local shortlist index").
--
-- Triggers on the five memory tables keep one row per (user_id, memory_type, embedding_model) of rows with an
-- embedding (model and sign bits set): `generation` takes a fresh value of one sequence on every INSERT, DELETE and
-- every UPDATE that changes what the shortlist reads (user, model, sign bits, created_at, expires_at);
-- `reload_generation` takes it too on a DELETE or such an UPDATE (a reader must reload, appending new rows is not
-- enough); `row_count` is the number of rows. Values come from one sequence and never repeat, so a row deleted and
-- made again (every memory of a type forgotten, then new ones) never shows a value a reader has seen. Importance
-- updates (`reinforce`) do not count: the search re-ranks its shortlist by the exact blend, the cached importance
-- only makes the estimate slightly stale (bounded by the reader's reload age). Writers of the same (user, type,
-- model) now serialise on its row until they commit.
-- Written only by these triggers; read by isa/memory/store.py.

CREATE SEQUENCE memory_search_generation_seq;

CREATE TABLE memory_search_generations (
    user_id           text   NOT NULL,
    memory_type       text   NOT NULL CHECK (memory_type IN ('factual', 'episodic', 'semantic', 'procedural', 'working')),
    embedding_model   text   NOT NULL,
    generation        bigint NOT NULL,
    reload_generation bigint NOT NULL,
    row_count         bigint NOT NULL,
    PRIMARY KEY (user_id, embedding_model, memory_type)
);
COMMENT ON TABLE memory_search_generations IS
    'Change counter per (user, memory type, embedding model), kept by triggers; tells a node whether its cached sign bits are current.';

-- AFTER INSERT, per statement (TG_ARGV[0]: the memory type): one upsert per (user, model) of the inserted rows.
CREATE FUNCTION memory_search_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO memory_search_generations AS g
        (user_id, memory_type, embedding_model, generation, reload_generation, row_count)
    SELECT d.user_id, TG_ARGV[0], d.embedding_model, d.gen, d.gen, d.n
      FROM (SELECT n.user_id, n.embedding_model, count(*) AS n, nextval('memory_search_generation_seq') AS gen
              FROM new_rows n WHERE n.embedding_model IS NOT NULL AND n.embedding_bits IS NOT NULL GROUP BY n.user_id, n.embedding_model) d
     ORDER BY d.user_id, d.embedding_model
    ON CONFLICT (user_id, embedding_model, memory_type) DO UPDATE
       SET generation = EXCLUDED.generation, row_count = g.row_count + EXCLUDED.row_count;
    RETURN NULL;
END;
$$;

-- AFTER DELETE, per statement: readers must reload; a (user, model) without rows loses its counter row.
CREATE FUNCTION memory_search_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE memory_search_generations g
       SET generation = d.gen, reload_generation = d.gen, row_count = g.row_count - d.n
      FROM (SELECT o.user_id, o.embedding_model, count(*) AS n, nextval('memory_search_generation_seq') AS gen
              FROM old_rows o WHERE o.embedding_model IS NOT NULL AND o.embedding_bits IS NOT NULL GROUP BY o.user_id, o.embedding_model) d
     WHERE g.user_id = d.user_id AND g.embedding_model = d.embedding_model AND g.memory_type = TG_ARGV[0];
    DELETE FROM memory_search_generations g
     WHERE g.memory_type = TG_ARGV[0] AND g.row_count <= 0
       AND (g.user_id, g.embedding_model) IN (SELECT o.user_id, o.embedding_model FROM old_rows o);
    RETURN NULL;
END;
$$;

-- AFTER UPDATE, per row, only when the row moves or changes what the shortlist reads (the WHEN of each trigger).
CREATE FUNCTION memory_search_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    gen bigint := nextval('memory_search_generation_seq');
BEGIN
    IF OLD.embedding_model IS NOT NULL AND OLD.embedding_bits IS NOT NULL THEN
        UPDATE memory_search_generations
           SET generation = gen, reload_generation = gen, row_count = row_count - 1
         WHERE user_id = OLD.user_id AND embedding_model = OLD.embedding_model AND memory_type = TG_ARGV[0];
    END IF;
    IF NEW.embedding_model IS NOT NULL AND NEW.embedding_bits IS NOT NULL THEN
        INSERT INTO memory_search_generations AS g
            (user_id, memory_type, embedding_model, generation, reload_generation, row_count)
        VALUES (NEW.user_id, TG_ARGV[0], NEW.embedding_model, gen, gen, 1)
        ON CONFLICT (user_id, embedding_model, memory_type) DO UPDATE
           SET generation = gen, reload_generation = gen, row_count = g.row_count + 1;
    END IF;
    DELETE FROM memory_search_generations
     WHERE user_id = OLD.user_id AND embedding_model = OLD.embedding_model AND memory_type = TG_ARGV[0]
       AND row_count <= 0;
    RETURN NULL;
END;
$$;

-- TRUNCATE: every counter of that type goes (the next rows make new ones with new values).
CREATE FUNCTION memory_search_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM memory_search_generations WHERE memory_type = TG_ARGV[0];
    RETURN NULL;
END;
$$;

-- The four triggers on each memory table (TG_ARGV[0]: its memory type). The row trigger fires only when the row
-- moves or changes what the shortlist reads; factual and working rows also expire (expires_at).
DO $$
DECLARE
    kind text;
    tbl text;
BEGIN
    FOREACH kind IN ARRAY ARRAY['factual', 'episodic', 'semantic', 'procedural', 'working'] LOOP
        tbl := kind || '_memories';
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION memory_search_inserted(%L)', tbl || '_search_ins', tbl, kind);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION memory_search_deleted(%L)', tbl || '_search_del', tbl, kind);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I FOR EACH ROW'
                       ' WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id'
                       ' OR OLD.embedding_model IS DISTINCT FROM NEW.embedding_model'
                       ' OR OLD.embedding_bits IS DISTINCT FROM NEW.embedding_bits'
                       ' OR OLD.created_at IS DISTINCT FROM NEW.created_at%s)'
                       ' EXECUTE FUNCTION memory_search_updated(%L)',
                       tbl || '_search_upd', tbl,
                       CASE WHEN kind IN ('factual', 'working') THEN ' OR OLD.expires_at IS DISTINCT FROM NEW.expires_at' ELSE '' END,
                       kind);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %I'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION memory_search_truncated(%L)', tbl || '_search_trunc', tbl, kind);
    END LOOP;
END
$$;

-- The rows already stored.
INSERT INTO memory_search_generations (user_id, memory_type, embedding_model, generation, reload_generation, row_count)
SELECT c.user_id, c.memory_type, c.embedding_model, c.gen, c.gen, c.n
  FROM (SELECT s.user_id, s.memory_type, s.embedding_model, s.n, nextval('memory_search_generation_seq') AS gen
          FROM (SELECT user_id, 'factual' AS memory_type, embedding_model, count(*) AS n FROM factual_memories
                 WHERE embedding_model IS NOT NULL AND embedding_bits IS NOT NULL GROUP BY user_id, embedding_model
                UNION ALL
                SELECT user_id, 'episodic', embedding_model, count(*) FROM episodic_memories
                 WHERE embedding_model IS NOT NULL AND embedding_bits IS NOT NULL GROUP BY user_id, embedding_model
                UNION ALL
                SELECT user_id, 'semantic', embedding_model, count(*) FROM semantic_memories
                 WHERE embedding_model IS NOT NULL AND embedding_bits IS NOT NULL GROUP BY user_id, embedding_model
                UNION ALL
                SELECT user_id, 'procedural', embedding_model, count(*) FROM procedural_memories
                 WHERE embedding_model IS NOT NULL AND embedding_bits IS NOT NULL GROUP BY user_id, embedding_model
                UNION ALL
                SELECT user_id, 'working', embedding_model, count(*) FROM working_memories
                 WHERE embedding_model IS NOT NULL AND embedding_bits IS NOT NULL GROUP BY user_id, embedding_model) s) c;
