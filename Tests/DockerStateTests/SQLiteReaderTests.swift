import DiskImage
import Foundation
import SQLiteDB
import TestSupport
import Testing

/// SQLiteDB's bounds on hostile databases, written by the real SQLite (python3's sqlite3 module).
@Suite("SQLite reader: bounded, read-only, clear errors")
struct SQLiteReaderTests {
    /// A database made by `python3` running `script` (with `db` the connection), opened through SQLiteDB.
    static func database(_ script: String, in dir: URL) throws -> (SQLite.Database, String) {
        let path = dir.appendingPathComponent("db.sql").path
        try TestImages.run(["python3", "-c", "import sqlite3, sys\ndb = sqlite3.connect(sys.argv[1])\n\(script)\ndb.commit()\ndb.close()", path])
        return (try SQLite.Database(source: try FileSource(path: path), name: "db.sql"), path)
    }

    static func scratch() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-sqlite-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test("An endless query (a recursive view) stops at the row bound, or at the step bound when it returns no rows")
    func endless() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (db, _) = try Self.database("db.execute(\"CREATE VIEW ContainerConfig AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x AS ID, 'x' AS JSON FROM c\")", in: dir)
        #expect(try db.schema()["ContainerConfig"] == "view")
        let start = Date()
        let rows = #expect(throws: FWError.self) { try db.rows("SELECT ID, JSON FROM ContainerConfig", columns: 2) }
        #expect(rows?.code == .limitExceeded && rows?.message.contains("more than 100000 rows") == true, "\(String(describing: rows))")
        let steps = #expect(throws: FWError.self) { try db.rows("SELECT count(*) FROM ContainerConfig", columns: 1) }
        #expect(steps?.code == .limitExceeded && steps?.message.contains("steps") == true, "\(String(describing: steps))")
        #expect(Date().timeIntervalSince(start) < 30)
    }

    @Test("A value over 8 MiB is an error, not an allocation; smaller ones are read")
    func tooBig() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (db, _) = try Self.database("db.execute('CREATE TABLE t(v)'); db.execute('INSERT INTO t VALUES (?)', ('x' * (9 << 20),)); db.execute(\"INSERT INTO t VALUES ('{}')\")", in: dir)
        #expect(try db.rows("SELECT v FROM t WHERE rowid = 2", columns: 1) == [[.text("{}")]])
        let error = #expect(throws: FWError.self) { try db.rows("SELECT v FROM t", columns: 1) }
        #expect(error?.code == .limitExceeded, "\(String(describing: error))")
    }

    @Test("Not an SQLite file, and an empty one: an error naming the path")
    func notSQLite() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, bytes) in [("garbage", [UInt8](repeating: 0x5A, count: 8192)), ("empty", [])] {
            let path = dir.appendingPathComponent(name).path
            #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
            let error = #expect(throws: FWError.self) { try SQLite.Database(source: try FileSource(path: path), name: "/x/db.sql") }
            #expect(error?.description.contains("/x/db.sql: not an SQLite 3 database") == true, "\(String(describing: error))")
        }
    }

    @Test("The file is never written: queries leave its bytes as they were")
    func readOnly() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (db, path) = try Self.database("db.execute('CREATE TABLE t(v)'); db.execute(\"INSERT INTO t VALUES ('a')\")", in: dir)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(try db.rows("SELECT v FROM t", columns: 1) == [[.text("a")]])
        #expect(throws: FWError.self) { try db.rows("INSERT INTO t VALUES ('b')", columns: 0) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["db.sql"])
    }
}
