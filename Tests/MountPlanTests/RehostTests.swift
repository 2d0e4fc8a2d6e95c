import DiskImage
import FileSystems
import Testing
import Assembly
@testable import MountPlan

@Suite("--rehost")
struct RehostTests {
    @Test func masksFoldedUnitsAndCommentsOutFoldedFstabLines() throws {
        let root = MemoryFileSystem()
        root.addFile("/etc/fstab", "proc /proc proc defaults 0 0\nLABEL=data /srv ext4 defaults 0 2\n/srv/www /www none bind 0 0\n")
        root.addSymlink("/etc/systemd/system/default.target", target: "/usr/lib/systemd/system/multi-user.target")
        root.addFile("/etc/systemd/system/mnt-overlay.mount", "[Mount]\nWhere=/mnt/overlay\n")
        root.addSymlink("/etc/systemd/system/local-fs.target.wants/mnt-data.mount", target: "/usr/lib/systemd/system/mnt-data.mount")
        root.addFile("/etc/systemd/system/zz.service", "[Service]\n")
        root.addDirectory("/mnt/data")
        root.addDirectory("/mnt/overlay")
        root.addDirectory("/srv")
        root.addDirectory("/www")
        let data = MemoryFileSystem()
        data.addFile("/www/index.html", "x")
        let plan = Plan(root: RootChoice(partition: 1, filesystem: "ext4", reason: "t"), mounts: [
            PlannedMount(where: "/", kind: .partition, partition: 1, declaredBy: "t"),
            PlannedMount(where: "/mnt/data", kind: .partition, partition: 2, declaredBy: "/usr/lib/systemd/system/mnt-data.mount"),
            PlannedMount(where: "/mnt/overlay", kind: .partition, partition: 2, declaredBy: "/etc/systemd/system/mnt-overlay.mount"),
            PlannedMount(where: "/srv", kind: .partition, partition: 2, declaredBy: "/etc/fstab:2"),
            PlannedMount(where: "/www", kind: .bind, what: "/srv/www", declaredBy: "/etc/fstab:3"),
        ], skipped: [], warnings: [], profile: "test")
        let ns = try NamespaceFileSystem(plan: plan) { [1: root, 2: data][$0.partition ?? 0] }
        var walk = RehostWalk(ns.bootedWalk(), plan: plan)
        var entries: [WalkEntry] = []
        while let e = walk.next() { entries.append(e) }
        let paths = entries.map(\.displayPath)
        // Still in walk order, each path once.
        let sorted = paths.sorted { NamespacePath($0) < NamespacePath($1) }
        #expect(paths == sorted)
        #expect(Set(paths).count == paths.count)
        let etcUnits = paths.filter { $0.hasPrefix("/etc/systemd/system/") && !$0.contains(".wants") }
        #expect(etcUnits == ["/etc/systemd/system/default.target", "/etc/systemd/system/mnt-data.mount",
                             "/etc/systemd/system/mnt-overlay.mount", "/etc/systemd/system/zz.service"])
        for unit in ["mnt-data.mount", "mnt-overlay.mount"] {
            let e = try #require(entries.first { $0.displayPath == "/etc/systemd/system/" + unit })
            #expect(e.metadata.type == .symlink && e.metadata.symlinkTarget == Array("/dev/null".utf8))
        }
        let fstab = try #require(entries.first { $0.displayPath == "/etc/fstab" })
        let text = String(decoding: try #require(try fstab.reader.readSmallFile(fstab.metadata.inode)), as: UTF8.self)
        #expect(text == "proc /proc proc defaults 0 0\n# fwassemble --rehost: folded into the archive: LABEL=data /srv ext4 defaults 0 2\n# fwassemble --rehost: folded into the archive: /srv/www /www none bind 0 0\n")
        #expect(fstab.metadata.size == UInt64(text.utf8.count))
        #expect(walk.changes.count == 4)
    }
}
