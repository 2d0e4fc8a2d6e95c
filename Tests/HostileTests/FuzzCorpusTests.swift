import Assembly
import DiskImage
import DockerState
import FileSystemF2FS
import FileSystemTar
import FileSystems
import Foundation
import TestSupport
import Testing

/// Replays every file under Tests/Corpus/<target>/ (crashing inputs kept by `make fuzz`, plus
/// hand-made regressions) through the function the libFuzzer binary calls. A crash here is a
/// crash of the test process: exactly what the regression guards against.
@Suite("Hostile disks: fuzz corpus replay")
struct FuzzCorpusTests {
    static var corpusRoot: URL { TestImages.repositoryRoot.appendingPathComponent("Tests/Corpus") }

    /// The inputs kept for a target; throws when its folder is missing or unreadable.
    static func inputs(_ target: String) throws -> [URL] {
        let dir = corpusRoot.appendingPathComponent(target)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        return names.filter { !$0.hasPrefix(".") && $0 != "README.md" }.sorted().map { dir.appendingPathComponent($0) }
    }

    /// Every target has a folder with at least one input (the hand-made regressions listed in
    /// Tests/Corpus/README.md), so the replay cannot pass by finding nothing.
    @Test(arguments: FuzzEntries.targets)
    func replay(_ target: String) throws {
        let inputs = try Self.inputs(target)
        try #require(!inputs.isEmpty, "Tests/Corpus/\(target) holds no input to replay")
        for url in inputs {
            let data = [UInt8](try Data(contentsOf: url))
            let start = Date()
            FuzzEntries.run(target, data)
            #expect(Date().timeIntervalSince(start) < 10, "\(target)/\(url.lastPathComponent) took too long")
        }
    }

    /// The store seeds reach the inventory and the exports (a seed the locator does not find
    /// would fuzz only the tar reader).
    @Test(arguments: [("containerd-store/containerd-root.tar", 2, 2), ("podman-store/podman-root.tar", 2, 2),
                      ("podman-store/podman5-root.tar", 3, 7)])
    func storeSeedsAreRead(_ seed: String, images: Int, containers: Int) throws {
        let data = [UInt8](try Data(contentsOf: Self.corpusRoot.appendingPathComponent(seed)))
        let found = FuzzEntries.store(data)
        #expect(found.roots == 1 && found.images == images && found.containers == containers, "\(found)")
        #expect(found.exports == min(images, 4) + min(containers, 4), "\(found)")   // the entry exports the first four of each
    }

    /// The podman-db seed (podman's own db.sql) is read as libpod's SQLite state, cleanly, through
    /// the store the entry builds around it (a seed SQLite refused would fuzz only the header check).
    @Test func podmanDBSeedIsRead() throws {
        let data = [UInt8](try Data(contentsOf: Self.corpusRoot.appendingPathComponent("podman-db/podman5-db.sql")))
        let tar = try TarReader(source: MemorySource(FuzzEntries.podmanStore(dbSQL: data), name: "seed"), name: "seed")
        let namespace = NamespaceFileSystem(name: "seed")
        try namespace.mount(tar, at: .root, origin: "seed")
        let root = try #require(DataRootLocator.locate(in: namespace).0.first?.root)
        let report = root.inspect()
        #expect(report.libpodState == LibpodStateInfo(file: "db.sql", backend: "sqlite"))
        #expect(report.integrity.ok, "\(report.integrity.problems)")
    }

    /// The f2fs seed (a small image mkfs.f2fs + sload.f2fs wrote, in the sparse form of
    /// Fuzz/sparse-seed.py) opens and walks whole, so the fuzzer starts from a readable image.
    @Test func f2fsSeedIsRead() throws {
        let data = [UInt8](try Data(contentsOf: Self.corpusRoot.appendingPathComponent("f2fs/sload-small-seed")))
        let source = try #require(SparseSource(data))
        let reader = try F2FSReader(source: source, name: "seed")
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty && entries.count > 60, "\(entries.count) entries, \(problems)")
        #expect(entries.contains { $0.path == "etc/l" && $0.target == "a" })
    }

    /// The kernel-written seed (images/disks/fs-f2fs-kernel.sh) reaches the layouts sload.f2fs
    /// does not write: lz4 clusters, an xattr node, devices, inline dentries.
    @Test func f2fsKernelSeedIsRead() throws {
        let data = [UInt8](try Data(contentsOf: Self.corpusRoot.appendingPathComponent("f2fs/kernel-small-seed")))
        let reader = try F2FSReader(source: try #require(SparseSource(data)), name: "seed")
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty && entries.count > 25, "\(entries.count) entries, \(problems)")
        let medium = try reader.inodeDetails(try #require(try reader.lookup("/doc/medium.txt")))
        #expect(medium.isCompressed && medium.size == 70_000)
        #expect(entries.contains { $0.path == "dev/bigdev" && $0.rdev == [300, 70000] })
        #expect(entries.contains { $0.path == "etc/passwd" && ($0.xattrs["user.big"]?.count ?? 0) > 1000 })
        #expect(try reader.inodeDetails(try #require(try reader.lookup("/etc/small"))).usesInlineDentries)
    }

    /// The ext4-writer inputs again, each image it finishes checked by `e2fsck -fn` before it is
    /// removed (too slow for the fuzz loop).
    @Test func ext4WriterImagesAreClean() throws {
        var finished = 0
        for url in try Self.inputs("ext4-writer") {
            let data = [UInt8](try Data(contentsOf: url))
            let done = FuzzEntries.ext4Writer(data) { image in
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                p.arguments = ["e2fsck", "-fn", image]
                p.standardOutput = FileHandle.nullDevice
                p.standardError = FileHandle.nullDevice
                do {
                    try p.run()
                    p.waitUntilExit()
                    #expect(p.terminationStatus == 0, "e2fsck -fn on the image of \(url.lastPathComponent): status \(p.terminationStatus)")
                } catch {
                    Issue.record("e2fsck: \(error)")
                }
            }
            if done { finished += 1 }
        }
        #expect(finished > 0, "no ext4-writer input gave an image")
    }

    @Test func everyCorpusDirectoryIsATarget() throws {
        let dirs = (try? FileManager.default.contentsOfDirectory(atPath: Self.corpusRoot.path)) ?? []
        for d in dirs where !d.hasPrefix(".") && d != "README.md" {
            #expect(FuzzEntries.targets.contains(d), "Tests/Corpus/\(d) is not a fuzz target")
        }
    }
}
