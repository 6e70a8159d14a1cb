-- 0043_knowledge_search_generations: a change counter per user on user_knowledge_bm25_stats, so a node may keep a
-- large user's sign bits and postings in its own memory and know whether they are current (issue #28;
-- isa/knowledge/local_index.py, docs/memory.md "Knowledge: process-local index").
--
-- 0019's triggers already write the user's statistics row on every INSERT (per row), on every UPDATE that changes
-- the text or the user (per row) and on DELETE (per statement); they now also set `generation` to a fresh value of
-- one sequence, and `reload_generation` too on a DELETE or such an UPDATE (a reader must load again: appending the
-- rows created since its newest one is not enough). A new row trigger does the same for an UPDATE that changes the
-- embedding's model or sign bits but not the text, and TRUNCATE moves every user's counters. Values never repeat,
-- so a user deleted and made again never shows a value a reader has seen. `entries` stays the user's row count
-- (every model, with or without an embedding), which is what a reader checks an append against.
-- Still written only by these triggers; read by isa/knowledge/store.py.

CREATE SEQUENCE knowledge_search_generation_seq;

ALTER TABLE user_knowledge_bm25_stats
    ADD COLUMN generation bigint NOT NULL DEFAULT nextval('knowledge_search_generation_seq'),
    ADD COLUMN reload_generation bigint NOT NULL DEFAULT 0;
UPDATE user_knowledge_bm25_stats SET reload_generation = generation;
COMMENT ON COLUMN user_knowledge_bm25_stats.generation IS
    'Never-repeated value that changes with every change of the user''s chunks (kept by triggers, 0043).';
COMMENT ON COLUMN user_knowledge_bm25_stats.reload_generation IS
    'Changes with a delete or an update of the user''s chunks (not an insert): cached copies must be loaded again.';

CREATE OR REPLACE FUNCTION user_knowledge_postings_refresh() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    len integer := knowledge_tsv_length(NEW.search_tsv);
    gen bigint;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.search_tsv IS NOT DISTINCT FROM NEW.search_tsv AND OLD.user_id = NEW.user_id THEN
            RETURN NULL;
        END IF;
        gen := nextval('knowledge_search_generation_seq');
        DELETE FROM user_knowledge_postings WHERE entry_id = NEW.id;
        UPDATE user_knowledge_bm25_stats
           SET entries = greatest(entries - 1, 0), total_len = greatest(total_len - knowledge_tsv_length(OLD.search_tsv), 0),
               generation = gen, reload_generation = gen
         WHERE user_id = OLD.user_id;
    ELSE
        gen := nextval('knowledge_search_generation_seq');
    END IF;
    INSERT INTO user_knowledge_postings (user_id, term, entry_id, tf_a, len_a)
    SELECT NEW.user_id, u.lexeme, NEW.id, least(cardinality(u.positions), 32767), len
    FROM unnest(NEW.search_tsv) AS u;
    -- Locks the user's row until commit: two transactions writing one user's knowledge take turns here.
    INSERT INTO user_knowledge_bm25_stats AS s (user_id, entries, total_len, generation, reload_generation)
    VALUES (NEW.user_id, 1, len, gen, gen)
    ON CONFLICT (user_id) DO UPDATE
       SET entries = s.entries + 1, total_len = s.total_len + EXCLUDED.total_len, generation = EXCLUDED.generation,
           reload_generation = CASE WHEN TG_OP = 'UPDATE' THEN EXCLUDED.generation ELSE s.reload_generation END;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION user_knowledge_stats_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE user_knowledge_bm25_stats s
       SET entries = greatest(s.entries - g.n, 0), total_len = greatest(s.total_len - g.len, 0),
           generation = g.gen, reload_generation = g.gen
      FROM (SELECT d.user_id, d.n, d.len, nextval('knowledge_search_generation_seq') AS gen
              FROM (SELECT user_id, count(*) AS n, sum(knowledge_tsv_length(search_tsv)) AS len
                      FROM gone GROUP BY user_id) d) g
     WHERE s.user_id = g.user_id;
    RETURN NULL;
END;
$$;

-- An embedding changed in place (text unchanged: 0019's trigger returns early): the cached sign bits are stale.
CREATE FUNCTION user_knowledge_search_moved() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    gen bigint := nextval('knowledge_search_generation_seq');
BEGIN
    UPDATE user_knowledge_bm25_stats SET generation = gen, reload_generation = gen WHERE user_id = NEW.user_id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER user_knowledge_search_moved AFTER UPDATE ON user_knowledge FOR EACH ROW
    WHEN (OLD.embedding_model IS DISTINCT FROM NEW.embedding_model OR OLD.embedding_bits IS DISTINCT FROM NEW.embedding_bits)
    EXECUTE FUNCTION user_knowledge_search_moved();

CREATE FUNCTION user_knowledge_search_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Every chunk is gone: no user has rows or tokens left (0019 never reset them on TRUNCATE).
    UPDATE user_knowledge_bm25_stats
       SET generation = nextval('knowledge_search_generation_seq'), entries = 0, total_len = 0;
    UPDATE user_knowledge_bm25_stats SET reload_generation = generation;
    RETURN NULL;
END;
$$;
CREATE TRIGGER user_knowledge_search_truncated AFTER TRUNCATE ON user_knowledge
    FOR EACH STATEMENT EXECUTE FUNCTION user_knowledge_search_truncated();
