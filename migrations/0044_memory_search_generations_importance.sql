-- 0044_memory_search_generations_importance: importance and embedding changes move a type's search generation too
-- (issue #28; isa/memory/local_index.py "int8 vectors").
--
-- 0042 left importance updates (`reinforce`) out: the local shortlist of 300 rows was re-ranked in SQL with the
-- current importance, so a held, stale importance only changed which rows made the 300. Since the local index also
-- holds int8 vectors it sends SQL only the ~40 best per type, chosen with the held importance, so a reinforced row
-- could be left out for up to local_index_max_age_seconds. Now an UPDATE of importance_score (reinforce raises it
-- only when a memory is stored again) or of the embedding itself (which may keep every sign bit) also takes a fresh
-- generation and reload_generation: the next search reloads that type (keeping the held vectors of rows not updated
-- since, so the reload costs about what a sign-bits-only load does). Same trigger function as 0042; only the WHEN of
-- the five row triggers changes.

DO $$
DECLARE
    kind text;
    tbl text;
BEGIN
    FOREACH kind IN ARRAY ARRAY['factual', 'episodic', 'semantic', 'procedural', 'working'] LOOP
        tbl := kind || '_memories';
        EXECUTE format('DROP TRIGGER %I ON %I', tbl || '_search_upd', tbl);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I FOR EACH ROW'
                       ' WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id'
                       ' OR OLD.embedding_model IS DISTINCT FROM NEW.embedding_model'
                       ' OR OLD.embedding_bits IS DISTINCT FROM NEW.embedding_bits'
                       ' OR OLD.embedding IS DISTINCT FROM NEW.embedding'
                       ' OR OLD.importance_score IS DISTINCT FROM NEW.importance_score'
                       ' OR OLD.created_at IS DISTINCT FROM NEW.created_at%s)'
                       ' EXECUTE FUNCTION memory_search_updated(%L)',
                       tbl || '_search_upd', tbl,
                       CASE WHEN kind IN ('factual', 'working') THEN ' OR OLD.expires_at IS DISTINCT FROM NEW.expires_at' ELSE '' END,
                       kind);
    END LOOP;
END
$$;
