-- 0019_knowledge_postings: BM25 for search_knowledge, like discovery's (0015): a postings table for user_knowledge
-- kept by triggers from search_tsv, plus per-user collection statistics (row count, total length) kept by the same
-- triggers, so a search reads its user's N and avgdl with one primary-key lookup instead of scanning postings.

-- The number of tokens of a tsvector (sum of its lexemes' positions), capped like the postings' smallint columns.
CREATE FUNCTION knowledge_tsv_length(tsv tsvector) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least(coalesce(sum(cardinality(u.positions)), 0), 32767)::integer FROM unnest(tsv) AS u
$$;

-- One row per (user, lexeme, knowledge row). Knowledge has one text field: it is field A; B and C are always 0 and
-- exist because isa/core/search.py's BM25 arm reads (tf_a, tf_b, tf_c, len_a, len_b, len_c) of any corpus.
-- user_id first: search probes (user_id, term) for each query term, and one user's postings sit together.
CREATE TABLE user_knowledge_postings (
    user_id  text NOT NULL,
    term     text NOT NULL,
    entry_id uuid NOT NULL REFERENCES user_knowledge (id) ON DELETE CASCADE,
    tf_a     smallint NOT NULL,
    tf_b     smallint NOT NULL DEFAULT 0,
    tf_c     smallint NOT NULL DEFAULT 0,
    len_a    smallint NOT NULL,
    len_b    smallint NOT NULL DEFAULT 0,
    len_c    smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, term, entry_id)
);
COMMENT ON TABLE user_knowledge_postings IS 'Inverted index of user_knowledge.search_tsv per user for BM25 (field A = the chunk text); kept by triggers.';
CREATE INDEX user_knowledge_postings_entry_idx ON user_knowledge_postings (entry_id);

-- BM25's N and avgdl per user (avgdl = total_len / entries), exact at every commit.
CREATE TABLE user_knowledge_bm25_stats (
    user_id   text PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    entries   bigint NOT NULL CHECK (entries >= 0),
    total_len bigint NOT NULL CHECK (total_len >= 0)
);
COMMENT ON TABLE user_knowledge_bm25_stats IS 'Per-user BM25 collection statistics of user_knowledge (entries, summed token counts); kept by triggers.';

CREATE FUNCTION user_knowledge_postings_refresh() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    len integer := knowledge_tsv_length(NEW.search_tsv);
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.search_tsv IS NOT DISTINCT FROM NEW.search_tsv AND OLD.user_id = NEW.user_id THEN
            RETURN NULL;
        END IF;
        DELETE FROM user_knowledge_postings WHERE entry_id = NEW.id;
        UPDATE user_knowledge_bm25_stats
           SET entries = greatest(entries - 1, 0), total_len = greatest(total_len - knowledge_tsv_length(OLD.search_tsv), 0)
         WHERE user_id = OLD.user_id;
    END IF;
    INSERT INTO user_knowledge_postings (user_id, term, entry_id, tf_a, len_a)
    SELECT NEW.user_id, u.lexeme, NEW.id, least(cardinality(u.positions), 32767), len
    FROM unnest(NEW.search_tsv) AS u;
    -- Locks the user's row until commit: two transactions writing one user's knowledge take turns here.
    INSERT INTO user_knowledge_bm25_stats AS s (user_id, entries, total_len) VALUES (NEW.user_id, 1, len)
    ON CONFLICT (user_id) DO UPDATE SET entries = s.entries + 1, total_len = s.total_len + EXCLUDED.total_len;
    RETURN NULL;
END;
$$;
CREATE TRIGGER user_knowledge_postings_insert AFTER INSERT ON user_knowledge
    FOR EACH ROW EXECUTE FUNCTION user_knowledge_postings_refresh();
CREATE TRIGGER user_knowledge_postings_update AFTER UPDATE ON user_knowledge
    FOR EACH ROW EXECUTE FUNCTION user_knowledge_postings_refresh();

-- Deleted rows' postings go by ON DELETE CASCADE; the statistics are corrected once per statement (deleting a
-- whole document, or a user, is one update per user rather than one per chunk).
CREATE FUNCTION user_knowledge_stats_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE user_knowledge_bm25_stats s
       SET entries = greatest(s.entries - g.n, 0), total_len = greatest(s.total_len - g.len, 0)
      FROM (SELECT user_id, count(*) AS n, sum(knowledge_tsv_length(search_tsv)) AS len
              FROM gone GROUP BY user_id) g
     WHERE s.user_id = g.user_id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER user_knowledge_stats_delete AFTER DELETE ON user_knowledge
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION user_knowledge_stats_deleted();

-- Existing rows.
INSERT INTO user_knowledge_postings (user_id, term, entry_id, tf_a, len_a)
SELECT k.user_id, u.lexeme, k.id, least(cardinality(u.positions), 32767), knowledge_tsv_length(k.search_tsv)
FROM user_knowledge k CROSS JOIN LATERAL unnest(k.search_tsv) AS u;
INSERT INTO user_knowledge_bm25_stats (user_id, entries, total_len)
SELECT user_id, count(*), sum(knowledge_tsv_length(search_tsv)) FROM user_knowledge GROUP BY user_id;
