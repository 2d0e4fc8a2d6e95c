import DiskImage
import DockerState
import FirmwareAssembler
import Foundation
import SQLiteDB
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Podman 5's store with its SQLite state, written by Debian trixie's podman 5.4
/// (images/disks/podman5-root.sh), compared with what `podman images` / `podman ps -a` printed
/// while the containers ran and with the kernel's overlay mount of the layers.
enum Podman5Disk {
    /// Why the recipe wrote no disk (no network for mmdebstrap, podman cannot run here), or nil.
    static let skipped: String? = {
        let note = TestImages.directory.appendingPathComponent("podman5-root.skipped")
        return (try? String(contentsOf: note, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)   // absent: not skipped
    }()

    static var available: Bool { getuid() == 0 && skipped == nil }
    static var reason: Comment { "podman5-root was not built: \(skipped ?? "not root")" }

    static func facts(_ name: String) throws -> [[String: Any]] {
        let disk = try TestImages.path("podman5-root.img")
        let url = URL(fileURLWithPath: String(disk.dropLast(4)) + ".facts/\(name)")
        return try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [[String: Any]])
    }

    static func root(_ disk: String) throws -> DataRootReport {
        let report = try Disk(path: try TestImages.path(disk)).docker()
        #expect(report.dataRoots.count == 1)
        return try #require(report.dataRoots.first)
    }

    static func name(_ p: [String: Any]) -> String { (p["Names"] as? [String])?.first ?? "?" }

    /// Every container of `podman ps -a` with its id, names, image, command, state, exit code and
    /// labels as podman printed them (`changed` replaces a container's state and exit code).
    static func expectContainersEqualPodman(_ root: DataRootReport, changed: [String: (String, Int)] = [:]) throws {
        let ps = try facts("ps.json")
        #expect(root.containers.count == ps.count)
        for p in ps {
            let c = try #require(root.containers.first { $0.id == p["Id"] as? String }, "container \(name(p))")
            let (state, exitCode) = changed[name(p)] ?? (p["State"] as? String ?? "?", p["ExitCode"] as? Int ?? -1)
            #expect([c.name] == p["Names"] as? [String])
            #expect(c.image == "sha256:" + (p["ImageID"] as? String ?? ""))
            #expect(c.imageTag == p["Image"] as? String)
            #expect(c.cmd == p["Command"] as? [String])
            #expect(c.state == state, "container \(c.name)")
            #expect(c.exitCode == exitCode, "container \(c.name)")
            #expect(c.labels == (p["Labels"] as? [String: String] ?? [:]))
            #expect(c.running == (state == "running") && c.paused == (state == "paused"))
        }
    }
}

@Suite("fwassemble docker on Podman 5's store (real podman, SQLite state)", .enabled(if: Podman5Disk.available, Podman5Disk.reason))
struct Podman5EndToEndTests {
    @Test("Inventory equals podman images and podman ps -a (created, initialized, running, paused, exited 3); the store is clean")
    func inventory() throws {
        let root = try Podman5Disk.root("podman5-root.img")
        #expect(root.path == "/var/lib/containers/storage" && root.engine == "podman" && root.store == "podman")
        #expect(root.libpodState == LibpodStateInfo(file: "db.sql", backend: "sqlite"))
        #expect(root.integrity.ok, "\(root.integrity.problems)")
        let images = try Podman5Disk.facts("images.json")
        #expect(root.images.count == images.count)
        for i in images {
            let id = try #require(i["Id"] as? String)
            let image = try #require(root.images.first { $0.id == "sha256:" + id })
            #expect(image.tags == (i["Names"] as? [String] ?? []))
            #expect(image.targetDigest == i["Digest"] as? String)
            // podman prints whole seconds; images.json keeps the nanoseconds (`podman import`'s time has them).
            let created = image.created.map { c in c.contains(".") ? String(c.prefix { $0 != "." }) + "Z" : c }
            #expect(created == i["CreatedAt"] as? String)
        }
        let states = Set(try Podman5Disk.facts("ps.json").compactMap { $0["State"] as? String })
        #expect(states.isSuperset(of: ["created", "initialized", "running", "exited"]), "\(states)")
        try Podman5Disk.expectContainersEqualPodman(root)
        #expect(root.summary.running == 1 && root.summary.exitedNonzero == 1)
    }

    /// docs/docker.md's account of a snapshot of a running device: the report keeps the stored
    /// states; podman after a reboot (the recipe's power loss: processes killed, runroot, tmpdir and
    /// /dev/shm emptied) shows running, paused and exited containers as exited (exit codes kept),
    /// created and initialized ones as created.
    @Test("After a reboot podman shows the documented reset; the report keeps what was stored")
    func afterReboot() throws {
        let before = Dictionary(uniqueKeysWithValues: try Podman5Disk.facts("ps.json").map { (Podman5Disk.name($0), $0) })
        let after = try Podman5Disk.facts("ps-after-reboot.json")
        #expect(after.count == before.count)
        let root = try Podman5Disk.root("podman5-root.img")
        for p in after {
            let name = Podman5Disk.name(p)
            let stored = try #require(before[name]?["State"] as? String)
            let reset = ["running": "exited", "paused": "exited", "stopping": "exited", "stopped": "exited", "initialized": "created"][stored] ?? stored
            #expect(p["State"] as? String == reset, "\(name): \(stored)")
            #expect(p["ExitCode"] as? Int == before[name]?["ExitCode"] as? Int, "\(name)")
            #expect(root.containers.first { $0.name == name }?.state == stored, "\(name)")
        }
    }

    @Test("A hot db.sql-journal is rolled back (in memory) as SQLite on the device would: podman's states, not the unfinished write")
    func hotJournal() throws {
        let root = try Podman5Disk.root("podman5-root-hot.img")
        #expect(root.libpodState?.journalRolledBack == true && root.libpodState?.walRead == false)
        #expect(root.integrity.ok, "\(root.integrity.problems)")
        try Podman5Disk.expectContainersEqualPodman(root)
        // The same db.sql without its journal holds half of the unfinished write: SQLite finds it
        // malformed (as `sqlite3` and `PRAGMA integrity_check` do on that file alone).
        let dir = try DockerScratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = try Self.dump("/var/lib/containers/storage/db.sql", from: "podman5-root-hot.img", to: dir)
        let error = #expect(throws: FWError.self) {
            let alone = try SQLite.Database(source: try FileSource(path: db), name: "db.sql")
            _ = try alone.rows("SELECT json_extract(JSON, '$.state') FROM ContainerState", columns: 1)
        }
        #expect(error?.message.contains("malformed") == true, "\(String(describing: error))")
    }

    @Test("Committed frames only in db.sql-wal are read: container late exited with code 42")
    func wal() throws {
        let root = try Podman5Disk.root("podman5-root-wal.img")
        #expect(root.libpodState?.walRead == true && root.libpodState?.journalRolledBack == false)
        #expect(root.integrity.ok, "\(root.integrity.problems)")
        try Podman5Disk.expectContainersEqualPodman(root, changed: ["late": ("exited", 42)])
    }

    @Test("A damaged db.sql is one problem naming the disk, partition and path; containers stay listed; no crash",
          arguments: ["truncated", "garbage"])
    func damaged(variant: String) throws {
        let disk = "podman5-root-\(variant).img"
        let root = try Podman5Disk.root(disk)
        #expect(!root.integrity.ok)
        let problems = root.integrity.problems
        #expect(problems.count == 1, "\(problems)")
        let problem = try #require(problems.first)
        #expect(problem.hasPrefix("/var/lib/containers/storage/db.sql: libpod's state cannot be read ("), "\(problem)")
        #expect(problem.contains(disk) && problem.contains("partition 2"), "\(problem)")
        #expect(problem.contains("malformed"), "\(problem)")
        #expect(root.containers.count == (try Podman5Disk.facts("ps.json")).count)
        #expect(root.containers.allSatisfy { $0.state == "created" })
        // Exports read the layers, not the state: they still work.
        let dir = try DockerScratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try Disk(path: try TestImages.path(disk)).export(.of("web", image: false, to: dir.appendingPathComponent("web.tar").path))
        #expect(result.problems.isEmpty && result.layers == 3)
    }

    @Test("--expect matches every container by podman's image names, Podman short names and ids; a wrong image is a mismatch")
    func expect() throws {
        let path = try TestImages.path("podman5-root.img")
        let report = try Disk(path: path).docker()
        let ps = try Podman5Disk.facts("ps.json")
        func compare(_ image: (String, [String: Any]) -> String) throws -> [String] {
            let list = ps.map { ["name": Podman5Disk.name($0), "image": image(Podman5Disk.name($0), $0)] }
            return try report.compare(expected: Array(try JSONSerialization.data(withJSONObject: list)))
        }
        #expect(try compare { _, p in p["Image"] as? String ?? "" }.isEmpty)
        #expect(try compare { _, p in p["ImageID"] as? String ?? "" }.isEmpty)
        // Short names as podman resolves them: `tool` is localhost/tool:latest, `web:1.0` docker.io/example/web:1.0.
        let short = ["docker.io/example/web:1.0": "web:1.0", "docker.io/example/job:2.0": "job:2.0", "localhost/tool:latest": "tool"]
        #expect(try compare { _, p in short[p["Image"] as? String ?? ""] ?? "?" }.isEmpty)
        let wrong = try compare { name, p in name == "failed" ? "web:1.0" : p["Image"] as? String ?? "" }
        #expect(wrong.count == 1 && wrong.first?.hasPrefix("container failed runs image localhost/tool:latest") == true, "\(wrong)")
    }

    /// The kernel's view: lowerdir = the layer's diff then the `l/` links its `lower` file names.
    @Test("Container and image exports equal the kernel's overlay mount of the same layers (short name tool included)",
          arguments: [("web", false), ("job", false), ("failed", false), ("docker.io/example/web:1.0", true), ("tool", true)])
    func exportMatchesKernel(reference: String, image: Bool) throws {
        let path = try TestImages.path("podman5-root.img")
        let root = try Podman5Disk.root("podman5-root.img")
        let top: String
        if image {
            let id = try #require(root.images.first { $0.tags.contains(reference) || $0.tags.contains("localhost/\(reference):latest") }?.id)
            let c = try #require(root.containers.first { $0.image == id })
            top = try #require(c.snapshotChain?.dropFirst().first)
        } else {
            top = try #require(root.containers.first { $0.name == reference }?.mountID)
        }
        let dir = try DockerScratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (result, exported) = try DockerScratch.export(reference, image: image, of: path, into: dir)
        guard TestImages.canLoopMount("ext4"), TestImages.canLoopMount("overlay") else { return }
        let (kernel, layerCount) = try DockerScratch.podmanOverlay(of: path, top: top, in: dir)
        #expect(result.layers == layerCount)
        let diffs = Manifest.differences(expected: kernel, actual: exported)
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
        #expect(kernel.count == exported.count)
    }

    /// `path` of the root partition copied out with debugfs (e2fsprogs reads the disk, not fwassemble).
    static func dump(_ path: String, from disk: String, to dir: URL) throws -> String {
        let image = try TestImages.path(disk)
        let offset = try DockerScratch.partitionOffset(image, 2)
        let part = dir.appendingPathComponent("p2.img").path
        try TestImages.run(["dd", "if=\(image)", "of=\(part)", "bs=1M", "skip=\(offset >> 20)", "status=none"])
        let out = dir.appendingPathComponent("db.sql").path
        try TestImages.run(["debugfs", "-R", "dump \(path) \(out)", part])
        return out
    }
}
