import CSQLite
import DiskImage

/// SQLite databases read through the system SQLite library from a `ByteSource` (a file of a
/// filesystem reader), never written: the bytes go through `MemoryVFS`, so a hot rollback journal
/// is rolled back and a WAL is read as the device's SQLite would at its next open, in memory only.
/// Every query is bounded: values (`maximumValue`), rows (`maximumRows`) and work
/// (`maximumProgress` virtual-machine steps, so a hostile schema cannot loop).
public enum SQLite {
    /// The largest string or blob a query returns (SQLITE_LIMIT_LENGTH: a longer one is an error).
    public static let maximumValue: Int32 = 8 << 20
    public static let maximumRows = 100_000
    /// Progress callbacks (every 1000 VM instructions) one query may take.
    static let maximumProgress = 50_000
    /// Memory the overlay may take beyond the database's own bytes (rolling a journal back writes
    /// at most the journal's pages; a WAL checkpoint at most the WAL's).
    static let overlayBudget = 64 << 20

    public enum Value: Equatable, Sendable {
        case null
        case integer(Int64)
        case real(Double)
        case text(String)
        case blob([UInt8])

        public var text: String? {
            if case .text(let s) = self { return s }
            return nil
        }

        public var integer: Int64? {
            if case .integer(let i) = self { return i }
            return nil
        }
    }

    /// What opening found beside the database file.
    public struct Companions: Sendable, Equatable {
        /// A hot rollback journal was present and has been rolled back (in memory).
        public var journalRolledBack = false
        /// A WAL (more than its 32-byte header) was present: SQLite read its committed frames.
        public var walRead = false
    }

    /// An open database. Used from one thread at a time.
    public final class Database {
        /// The file's path, named in every error.
        public let name: String
        public let place: FWError.Place
        public private(set) var companions = Companions()
        private let handle: OpaquePointer
        private let key: String
        private let files: MemoryVFS.Files
        private let progress = Progress()

        final class Progress {
            var calls = 0
        }

        /// Opens `source` (the database file) with its `-journal` and `-wal` when the disk has them.
        public init(source: any ByteSource, name: String, journal: (any ByteSource)? = nil, wal: (any ByteSource)? = nil) throws {
            self.name = name
            self.place = source.place
            let header = try source.bytes(at: 0, count: Int(min(100, source.size)))
            guard header.count == 100, header.starts(with: Array("SQLite format 3\0".utf8)) else {
                throw FWError(.corrupt, "not an SQLite 3 database (\(source.size) bytes, no 'SQLite format 3' header)", at: source.place, path: name)
            }
            _ = MemoryVFS.vfs
            var made: MemoryVFS.Files?
            key = MemoryVFS.registry.add { key in
                var byName = [key: MemoryVFS.File(source: source)]
                if let journal { byName[key + "-journal"] = MemoryVFS.File(source: journal) }
                if let wal { byName[key + "-wal"] = MemoryVFS.File(source: wal) }
                let files = MemoryVFS.Files(byName, budget: SQLite.overlayBudget)
                made = files
                return files
            }
            guard let made else { throw FWError(.io, "SQLite: the database could not be registered", at: place, path: name) }
            files = made
            var db: OpaquePointer?
            let rc = sqlite3_open_v2(key, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_PRIVATECACHE | SQLITE_OPEN_NOMUTEX, MemoryVFS.name)
            guard rc == SQLITE_OK, let db else {
                if let db { sqlite3_close_v2(db) }
                MemoryVFS.registry.remove(key)
                throw FWError(.io, "SQLite cannot open it (code \(rc))", at: place, path: name)
            }
            handle = db
            do {
                try configure(journal: journal, wal: wal)
            } catch {
                sqlite3_close_v2(db)
                MemoryVFS.registry.remove(key)
                throw error
            }
        }

        deinit {
            sqlite3_progress_handler(handle, 0, nil, nil)
            sqlite3_close_v2(handle)
            MemoryVFS.registry.remove(key)
        }

        /// Limits, no extensions, no schema functions, exclusive locking (a WAL's index then lives
        /// in memory: no `-shm`), temporary tables in memory, then the first read (which rolls a
        /// hot journal back), then query-only.
        private func configure(journal: (any ByteSource)?, wal: (any ByteSource)?) throws {
            guard fwa_sqlite_harden(handle) == SQLITE_OK else { throw failure("cannot be configured") }
            sqlite3_limit(handle, SQLITE_LIMIT_LENGTH, SQLite.maximumValue)
            sqlite3_limit(handle, SQLITE_LIMIT_ATTACHED, 0)
            sqlite3_progress_handler(handle, 1000, { context in
                guard let context else { return 1 }
                let p = Unmanaged<Progress>.fromOpaque(context).takeUnretainedValue()
                p.calls += 1
                return p.calls > SQLite.maximumProgress ? 1 : 0
            }, Unmanaged.passUnretained(progress).toOpaque())
            for pragma in ["PRAGMA locking_mode=EXCLUSIVE", "PRAGMA temp_store=MEMORY", "PRAGMA cell_size_check=ON"] {
                _ = try rows(pragma, columns: 0)
            }
            let journalFile = files.byName[key + "-journal"]
            let walFile = files.byName[key + "-wal"]
            _ = try rows("SELECT count(*) FROM sqlite_schema", columns: 1)
            if let journal, journal.size > 0, let j = journalFile {
                companions.journalRolledBack = j.deleted || j.size == 0 || !j.blocks.isEmpty
            }
            companions.walRead = (wal?.size ?? 0) > 32 && walFile != nil
            _ = try rows("PRAGMA query_only=1", columns: 0)
        }

        private func failure(_ what: String, code: Int32? = nil) -> FWError {
            if let e = files.firstError {
                return FWError(e.code, "SQLite: \(e.message)", at: place, path: name)
            }
            let rc = code ?? sqlite3_errcode(handle)
            let message = String(cString: sqlite3_errmsg(handle))
            let kind: FWError.Code = rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB ? .corrupt
                : rc == SQLITE_TOOBIG || rc == SQLITE_INTERRUPT || rc == SQLITE_FULL ? .limitExceeded : .io
            let detail = rc == SQLITE_INTERRUPT ? " (more than \(SQLite.maximumProgress * 1000) steps)" : ""
            return FWError(kind, "SQLite \(what): \(message)\(detail)", at: place, path: name)
        }

        /// The rows of `sql` (a statement without parameters), `columns` values each.
        public func rows(_ sql: String, columns: Int) throws -> [[Value]] {
            progress.calls = 0
            var statement: OpaquePointer?
            let prepared = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
            defer { sqlite3_finalize(statement) }
            guard prepared == SQLITE_OK, let statement else { throw failure("cannot run \(sql.debugDescription)", code: prepared) }
            var result: [[Value]] = []
            while true {
                let rc = sqlite3_step(statement)
                if rc == SQLITE_DONE { break }
                guard rc == SQLITE_ROW else { throw failure("reading \(sql.debugDescription)", code: rc) }
                guard result.count < SQLite.maximumRows else {
                    throw FWError(.limitExceeded, "SQLite: \(sql.debugDescription) has more than \(SQLite.maximumRows) rows", at: place, path: name)
                }
                result.append((0..<Int32(columns)).map { value(statement, $0) })
            }
            return result
        }

        private func value(_ statement: OpaquePointer, _ i: Int32) -> Value {
            switch sqlite3_column_type(statement, i) {
            case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, i))
            case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, i))
            case SQLITE_TEXT:
                guard let p = sqlite3_column_text(statement, i) else { return .text("") }
                let n = Int(sqlite3_column_bytes(statement, i))
                return .text(String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self))
            case SQLITE_BLOB:
                let n = Int(sqlite3_column_bytes(statement, i))
                guard n > 0, let p = sqlite3_column_blob(statement, i) else { return .blob([]) }
                return .blob(Array(UnsafeRawBufferPointer(start: p, count: n)))
            default: return .null
            }
        }

        /// The kinds of the schema's objects by name (`table`, `view`, `index`, `trigger`).
        public func schema() throws -> [String: String] {
            var result: [String: String] = [:]
            for row in try rows("SELECT name, type FROM sqlite_schema", columns: 2) {
                if let n = row[0].text, let t = row[1].text { result[n] = t }
            }
            return result
        }
    }
}
