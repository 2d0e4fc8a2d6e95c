import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// `diff` of two disks against what the kernel's namespaces of both say, manifest by manifest.
@Suite(.enabled(if: CLI.path != nil && ["erofs", "squashfs", "ext4"].allSatisfy(TestImages.canLoopMount), "needs the binary, root and loop mounts"),
       .serialized)
struct DiffEndToEndTests {
    struct Change: Decodable, Equatable { var path: String; var change: String; var fields: [String]?; var docker: String?; var name: String? }

    static func changes(_ data: Data) throws -> [Change] {
        try String(decoding: data, as: UTF8.self).split(separator: "\n").map { try JSONDecoder().decode(Change.self, from: Data($0.utf8)) }
    }

    /// The fields `diff` names for two manifest entries of one path.
    static func fields(_ a: ManifestEntry, _ b: ManifestEntry) -> Set<String> {
        var f = Set<String>()
        if a.type != b.type { f.insert("type") }
        if a.perm != b.perm { f.insert("mode") }
        if a.uid != b.uid { f.insert("uid") }
        if a.gid != b.gid { f.insert("gid") }
        if a.mtime != b.mtime || a.mtime_ns != b.mtime_ns { f.insert("mtime") }
        if a.target != b.target { f.insert("link") }
        if a.rdev != b.rdev { f.insert("device") }
        if a.xattrs != b.xattrs { f.insert("xattrs") }
        if a.type == "regular", b.type == "regular" {
            if a.size != b.size { f.insert("size") }
            if a.size != b.size || a.crc32 != b.crc32 { f.insert("content") }
        }
        return f
    }

    @Test(arguments: [("haos-full.img", "haos-slotb.img"), ("docker-root.img", "docker-root-broken.img")])
    func namesExactlyTheEntriesTheKernelSeesDiffer(_ pair: (String, String)) throws {
        let (pa, pb) = (try TestImages.path(pair.0), try TestImages.path(pair.1))
        let (da, db) = (try Disk(path: pa), try Disk(path: pb))
        let ka = try KernelNamespace(image: pa, plan: try da.plan(), inspection: try da.inspect())
        defer { ka.unmount() }
        let kb = try KernelNamespace(image: pb, plan: try db.plan(), inspection: try db.inspect())
        defer { kb.unmount() }
        let (ma, mb) = (try ka.manifest(), try kb.manifest())
        let byA = Dictionary(ma.map { ($0.path, $0) }, uniquingKeysWith: { x, _ in x })
        let byB = Dictionary(mb.map { ($0.path, $0) }, uniquingKeysWith: { x, _ in x })
        var expected: [String: (String, Set<String>)] = [:]
        for (path, a) in byA {
            if let b = byB[path] {
                let f = Self.fields(a, b)
                if !f.isEmpty { expected[path] = ("changed", f) }
            } else {
                expected[path] = ("removed", [])
            }
        }
        for path in byB.keys where byA[path] == nil { expected[path] = ("added", []) }

        let r = try CLI.run(["diff", pa, pb, "--json"])
        #expect(r.status == 1, "\(r.stderr)")
        let all = try Self.changes(r.stdout)
        let entries = all.filter { $0.docker == nil }
            .map { ($0.path == "/" ? "." : String($0.path.dropFirst()), $0) }
            .filter { !ka.isExcluded($0.0) && !kb.isExcluded($0.0) }
        #expect(!expected.isEmpty)
        #expect(Set(entries.map(\.0)) == Set(expected.keys))
        for (path, c) in entries {
            guard let (kind, fields) = expected[path] else { continue }
            #expect(c.change == kind, "\(path)")
            #expect(Set(c.fields ?? []) == fields, "\(path): \(c.fields ?? []) vs \(fields.sorted())")
        }
        // In walk order, each path once.
        let paths = entries.map(\.0)
        #expect(paths == paths.sorted { NamespacePathOrder.less($0, $1) })

        // The Docker inventories: containers by name, images by id.
        let (ra, rb) = (try da.docker(), try db.docker())
        let namesA = Set(ra.dataRoots.flatMap { r in r.containers.map { "\(r.path) \($0.name)" } })
        let namesB = Set(rb.dataRoots.flatMap { r in r.containers.map { "\(r.path) \($0.name)" } })
        let docker = all.filter { $0.docker == "container" }
        #expect(Set(docker.filter { $0.change == "added" }.map { "\($0.path) \($0.name ?? "")" }) == namesB.subtracting(namesA))
        #expect(Set(docker.filter { $0.change == "removed" }.map { "\($0.path) \($0.name ?? "")" }) == namesA.subtracting(namesB))
        let idsA = Set(ra.dataRoots.flatMap { $0.images.map(\.id) }), idsB = Set(rb.dataRoots.flatMap { $0.images.map(\.id) })
        #expect(all.filter { $0.docker == "image" && $0.change != "changed" }.count == idsA.symmetricDifference(idsB).count)

        // --no-content: the same entries but those whose only change was their bytes.
        let meta = try Self.changes(try CLI.run(["diff", pa, pb, "--json", "--no-content"]).stdout).filter { $0.docker == nil }
        #expect(meta.allSatisfy { !($0.fields ?? []).contains("content") })
        #expect(meta.count <= all.filter { $0.docker == nil }.count)
    }

    @Test func exitStatusAsDiff() throws {
        let a = try TestImages.path("haos-full.img")
        let same = try CLI.run(["diff", a, a])
        #expect(same.status == 0 && same.stdout.isEmpty, "\(same.stdoutText) \(same.stderr)")
        let sub = try CLI.run(["diff", a, try TestImages.path("haos-slotb.img"), "/usr/lib"])
        #expect(sub.status == 1)
        #expect(sub.stdoutText.split(separator: "\n").allSatisfy { $0.contains(" /usr/lib") }, "\(sub.stdoutText)")
        let missing = try CLI.run(["diff", a, "/tmp/look-no-such-disk.img"])
        #expect(missing.status == 2 && missing.stderr.contains("look-no-such-disk"), "\(missing.stderr)")
        let partitions = try CLI.run(["diff", a, try TestImages.path("haos-slotb.img"), "--partition", "8", "--no-content"])
        #expect(partitions.status == 0 || partitions.status == 1, "\(partitions.stderr)")
    }
}

/// The walk's order of two relative paths (component by component, bytewise).
enum NamespacePathOrder {
    static func less(_ a: String, _ b: String) -> Bool {
        if a == "." { return b != "." }
        if b == "." { return false }
        let x = a.split(separator: "/").map { Array($0.utf8) }, y = b.split(separator: "/").map { Array($0.utf8) }
        for (p, q) in zip(x, y) where p != q { return p.lexicographicallyPrecedes(q) }
        return x.count < y.count
    }
}
