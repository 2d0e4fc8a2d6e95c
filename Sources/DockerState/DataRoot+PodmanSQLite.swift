import DiskImage
import FileSystems
import SQLiteDB

/// libpod's container states, from one of its two databases: config and state JSON by container id
/// (the same JSON in both), and the state names of the Podman generation that writes it.
struct PodmanState {
    enum Backend {
        /// `libpod/bolt_state.db`: Podman 4 (and Podman 5 upgraded from it).
        case bolt
        /// `db.sql` at the graph root: Podman 5.
        case sqlite
        /// Neither file: every container shows as created.
        case none

        var file: String? {
            switch self {
            case .bolt: PodmanState.boltFile
            case .sqlite: PodmanState.sqliteFile
            case .none: nil
            }
        }

        /// libpod's ContainerStatus (0 unknown, 1 configured, 2 created, 3 running, 4 stopped,
        /// 5 paused, 6 exited, 7 removing, 8 stopping) as `podman ps -a` shows it: Podman 5
        /// prints its own names (`ContainerStatus.String()`: configured is "created", created is
        /// "initialized"); for Podman 4's BoltDB the names are Docker's, as Podman 4 showed them.
        func stateName(_ state: Int?) -> String {
            switch self {
            case .sqlite:
                [0: "unknown", 1: "created", 2: "initialized", 3: "running", 4: "stopped", 5: "paused", 6: "exited",
                 7: "removing", 8: "stopping"][state ?? 1] ?? "unknown"
            case .bolt, .none:
                [3: "running", 4: "exited", 5: "paused", 6: "exited", 7: "dead", 8: "running"][state ?? 2] ?? "created"
            }
        }

        var name: String {
            switch self {
            case .bolt: "boltdb"
            case .sqlite: "sqlite"
            case .none: "none"
            }
        }
    }

    static let boltFile = "libpod/bolt_state.db"
    /// Podman 5 keeps its SQLite state at the graph root (`filepath.Join(GraphRoot, "db.sql")`).
    static let sqliteFile = "db.sql"

    var backend: Backend
    var containers: [String: (config: PodmanJSON.ContainerConfig, state: PodmanJSON.ContainerState)] = [:]
    var journalRolledBack = false
    var walRead = false

    var info: LibpodStateInfo {
        LibpodStateInfo(file: backend.file, backend: backend.name, journalRolledBack: journalRolledBack, walRead: walRead)
    }
}

extension DataRoot {
    /// The largest db.sql (and -journal, -wal) read: libpod's state is a few KiB a container.
    static let maximumStateDatabase: UInt64 = 256 << 20

    /// Podman 5's db.sql: `ContainerConfig(ID, Name, PodID, JSON)` and `ContainerState(ID, State,
    /// ExitCode, JSON)`, read through SQLite with its hot journal rolled back or its WAL read (in
    /// memory). The JSON columns are libpod's config and state, as in bolt_state.db; the `State`
    /// and `ExitCode` columns are written only when a container is added (libpod never updates
    /// them), so the JSON decides. An unreadable or damaged database is one problem naming it;
    /// its containers then show as created.
    func podmanSQLiteStates() -> PodmanState {
        let relative = PodmanState.sqliteFile
        var result = PodmanState(backend: .sqlite)
        guard let e = entry(relative) else { return result }
        let name = "\(path)/\(relative)"
        for (file, size) in [(relative, e.metadata.size)] + [relative + "-journal", relative + "-wal"].compactMap({ f in entry(f).map { (f, $0.metadata.size) } })
        where size > Self.maximumStateDatabase {
            // Read through a forward stream (FileByteSource): a huge file would be re-read again and again.
            problem(file, "is \(size) bytes, over the \(Self.maximumStateDatabase >> 20) MiB read for libpod's state; not read, containers show as created")
            return result
        }
        do {
            let db = try SQLite.Database(source: try FileByteSource(reader: reader, inode: e.inode, name: name), name: name,
                                         journal: try companion(relative + "-journal"), wal: try companion(relative + "-wal"))
            (result.journalRolledBack, result.walRead) = (db.companions.journalRolledBack, db.companions.walRead)
            let schema = try db.schema()
            for table in ["ContainerConfig", "ContainerState"] where schema[table] != "table" {
                problem(relative, "has no \(table) table (\(schema[table].map { "a \($0)" } ?? "absent")): not libpod's state; containers show as created")
                return result
            }
            var configs: [String: PodmanJSON.ContainerConfig] = [:]
            for row in try db.rows("SELECT ID, JSON FROM ContainerConfig", columns: 2) {
                guard let id = sqliteID(row[0], table: "ContainerConfig", seen: { configs[$0] != nil }) else { continue }
                configs[id] = podmanJSON(jsonBytes(row[1]), PodmanJSON.ContainerConfig(), at: relative, "ContainerConfig \(id)/config")
            }
            var seen: [String: Bool] = [:]
            for row in try db.rows("SELECT ID, JSON FROM ContainerState", columns: 2) {
                guard let id = sqliteID(row[0], table: "ContainerState", seen: { seen[$0] != nil }) else { continue }
                seen[id] = true
                guard let config = configs[id] else {
                    problem(relative, "ContainerState \(id) has no ContainerConfig row; ignored")
                    continue
                }
                result.containers[id] = (config, podmanJSON(jsonBytes(row[1]), PodmanJSON.ContainerState(), at: relative, "ContainerState \(id)/state"))
            }
            for id in configs.keys.sorted() where seen[id] == nil {
                problem(relative, "ContainerConfig \(id) has no ContainerState row; shown as created")
                result.containers[id] = (configs[id] ?? PodmanJSON.ContainerConfig(), PodmanJSON.ContainerState())
            }
        } catch {
            let e = FWError(error)
            let place = e.place.description.isEmpty ? "" : " (\(e.place))"
            problem(relative, "libpod's state cannot be read\(place), containers show as created: \(e.message)")
        }
        return result
    }

    /// A file beside db.sql (`-journal`, `-wal`) as bytes to read, nil when absent or empty; one
    /// that is not a regular file is a problem and is not used.
    private func companion(_ relative: String) throws -> (any ByteSource)? {
        guard let e = entry(relative) else { return nil }
        guard e.metadata.type == .regular else {
            problem(relative, "is not a regular file; not applied to db.sql")
            return nil
        }
        guard e.metadata.size > 0 else { return nil }
        return try FileByteSource(reader: reader, inode: e.inode, name: "\(path)/\(relative)")
    }

    /// A container id from an ID column: text, one path component, not seen before (else a problem, nil).
    private func sqliteID(_ value: SQLite.Value, table: String, seen: (String) -> Bool) -> String? {
        guard let id = value.text else {
            problem(PodmanState.sqliteFile, "\(table) has an ID that is not text; row ignored")
            return nil
        }
        guard NamespacePath.Component(id) != nil else {
            problem(PodmanState.sqliteFile, "\(table) container id \(id.debugDescription) is not a single path component; ignored")
            return nil
        }
        guard !seen(id) else {
            problem(PodmanState.sqliteFile, "\(table) lists container \(id) more than once; the later row ignored")
            return nil
        }
        return id
    }

    /// A JSON column's bytes (text or blob; anything else is not JSON).
    private func jsonBytes(_ value: SQLite.Value) -> [UInt8]? {
        switch value {
        case .text(let s): Array(s.utf8)
        case .blob(let b): b
        default: [UInt8]("null".utf8)
        }
    }
}
