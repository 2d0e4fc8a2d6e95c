import DiskImage
import FileSystems
import MountPlan
import Testing
import TestSupport
import FileSystemFAT
@testable import Assembly

private func plan(_ mounts: [PlannedMount]) -> Plan {
    Plan(root: RootChoice(partition: 1, filesystem: "memory", reason: "test"), mounts: mounts, skipped: [], warnings: [], profile: "test")
}

extension NamespaceFileSystem {
    /// The booted walk's entries.
    func entries() -> [WalkEntry] { Array(bootedWalk()) }

    /// The namespace's problems after a whole booted walk, with the walk's own.
    var walkedProblems: [NamespaceProblem] {
        var walk = bootedWalk()
        while walk.next() != nil {}
        return problems + walk.problems.map { NamespaceProblem(path: $0.path, message: $0.error.message) }
    }
}

private func listing(_ ns: NamespaceFileSystem) -> [String] {
    ns.entries().map { e in
        var line = e.displayPath
        if let t = e.hardlinkTarget { line += " => /" + String(decoding: t, as: UTF8.self) }
        return line
    }
}

@Suite("assembled namespace")
struct NamespaceTests {
    /// A HAOS-like disk: root with /etc/hostname and an empty /var/lib/docker, a data partition
    /// bound onto /var/lib/docker, an overlay partition with a file bind.
    func haos() -> (Plan, [Int: MemoryFileSystem]) {
        let root = MemoryFileSystem(sourceName: "root")
        root.addFile("/etc/hostname", "rootfs-default\n")
        root.addFile("/etc/os-release", "ID=haos\n")
        root.addDirectory("/mnt/data")
        root.addDirectory("/mnt/overlay")
        root.addDirectory("/var/lib/docker", permissions: 0o711)
        root.addFile("/var/lib/docker/hidden", "on the root, hidden by the bind\n")
        root.addDirectory("/igloo")
        root.addFile("/igloo/x", "x")
        let data = MemoryFileSystem(sourceName: "data")
        data.addDirectory("/", permissions: 0o755)
        data.addDirectory("/docker", permissions: 0o710, uid: 0, gid: 0)
        let layer = data.addFile("/docker/overlay2/abc/diff/bin/sh", "sh")
        data.addHardlink("/docker/overlay2/abc/diff/bin/ash", to: layer)
        data.addEntry("/docker/overlay2/abc/diff/etc/gone", metadata: Metadata(type: .characterDevice, permissions: 0, uid: 0, gid: 0, size: 0,
                                                                               mtime: Timestamp(seconds: 0), inode: 0, device: DeviceNumber(major: 0, minor: 0)))
        let overlay = MemoryFileSystem(sourceName: "overlay")
        overlay.addFile("/etc/hostname", "homeassistant\n")
        let mounts = [
            PlannedMount(where: "/", kind: .partition, partition: 1, fstype: "ext4", declaredBy: "test"),
            PlannedMount(where: "/mnt/data", kind: .partition, partition: 8, fstype: "ext4", declaredBy: "mnt-data.mount"),
            PlannedMount(where: "/mnt/overlay", kind: .partition, partition: 7, fstype: "ext4", declaredBy: "mnt-overlay.mount"),
            PlannedMount(where: "/etc/hostname", kind: .bind, what: "/mnt/overlay/etc/hostname", declaredBy: "etc-hostname.mount"),
            PlannedMount(where: "/var/lib/docker", kind: .bind, what: "/mnt/data/docker", declaredBy: "var-lib-docker.mount"),
        ]
        return (plan(mounts), [1: root, 7: overlay, 8: data])
    }

    @Test func bindsAndHardlinksAcrossBinds() throws {
        let (p, fss) = haos()
        let ns = try NamespaceFileSystem(plan: p) { fss[$0.partition ?? 0] }
        let lines = listing(ns)
        #expect(lines == [
            "/", "/etc", "/etc/hostname", "/etc/os-release",
            "/mnt", "/mnt/data", "/mnt/data/docker", "/mnt/data/docker/overlay2", "/mnt/data/docker/overlay2/abc",
            "/mnt/data/docker/overlay2/abc/diff", "/mnt/data/docker/overlay2/abc/diff/bin",
            "/mnt/data/docker/overlay2/abc/diff/bin/ash", "/mnt/data/docker/overlay2/abc/diff/bin/sh => /mnt/data/docker/overlay2/abc/diff/bin/ash",
            "/mnt/data/docker/overlay2/abc/diff/etc", "/mnt/data/docker/overlay2/abc/diff/etc/gone",
            "/mnt/overlay", "/mnt/overlay/etc", "/mnt/overlay/etc/hostname => /etc/hostname",
            "/var", "/var/lib", "/var/lib/docker", "/var/lib/docker/overlay2", "/var/lib/docker/overlay2/abc",
            "/var/lib/docker/overlay2/abc/diff", "/var/lib/docker/overlay2/abc/diff/bin",
            "/var/lib/docker/overlay2/abc/diff/bin/ash => /mnt/data/docker/overlay2/abc/diff/bin/ash",
            "/var/lib/docker/overlay2/abc/diff/bin/sh => /mnt/data/docker/overlay2/abc/diff/bin/ash",
            "/var/lib/docker/overlay2/abc/diff/etc",
            "/var/lib/docker/overlay2/abc/diff/etc/gone => /mnt/data/docker/overlay2/abc/diff/etc/gone",
        ])
        // The file bind: /etc/hostname comes first in walk order, the overlay's own path links to it.
        #expect(ns.walkedProblems.contains { $0.path == "/igloo" })
        // The bind target takes the metadata of the bound directory.
        let docker = try #require(ns.entries().first { $0.displayPath == "/var/lib/docker" })
        #expect(docker.metadata.permissions == 0o710)
        // The whiteout inside the data-root is kept as a file of the data-root.
        let gone = try #require(ns.entries().first { $0.displayPath == "/mnt/data/docker/overlay2/abc/diff/etc/gone" })
        #expect(gone.metadata.type == .characterDevice)
    }

    @Test func missingBindSourceIsAProblemNotAFailure() throws {
        let (p0, fss) = haos()
        var p = p0
        p.mounts.append(PlannedMount(where: "/root/.ssh", kind: .bind, what: "/mnt/overlay/root/.ssh", declaredBy: "root-.ssh.mount"))
        let ns = try NamespaceFileSystem(plan: p) { fss[$0.partition ?? 0] }
        #expect(ns.walkedProblems.contains { $0.path == "/root/.ssh" && $0.message.contains("does not exist") })
        #expect(!listing(ns).contains("/root/.ssh"))
    }

    @Test func mountPointWithoutParentIsSynthesised() throws {
        let root = MemoryFileSystem()
        root.addFile("/etc/os-release", "x")
        let data = MemoryFileSystem()
        data.addFile("/file", "y")
        let p = plan([
            PlannedMount(where: "/", kind: .partition, partition: 1, declaredBy: "t"),
            PlannedMount(where: "/srv/a/b", kind: .partition, partition: 2, declaredBy: "t"),
        ])
        let ns = try NamespaceFileSystem(plan: p) { [1: root, 2: data][$0.partition ?? 0] }
        #expect(listing(ns) == ["/", "/etc", "/etc/os-release", "/srv", "/srv/a", "/srv/a/b", "/srv/a/b/file"])
        #expect(ns.problems.count == 2)
    }

    @Test func laterMountOverAParentHidesEarlierMount() throws {
        let root = MemoryFileSystem()
        root.addDirectory("/a/b")
        let one = MemoryFileSystem()
        one.addFile("/one", "1")
        let two = MemoryFileSystem()
        two.addFile("/two", "2")
        let p = plan([
            PlannedMount(where: "/", kind: .partition, partition: 1, declaredBy: "t"),
            PlannedMount(where: "/a/b", kind: .partition, partition: 2, declaredBy: "t"),
            PlannedMount(where: "/a", kind: .partition, partition: 3, declaredBy: "t"),
        ])
        let ns = try NamespaceFileSystem(plan: p) { [1: root, 2: one, 3: two][$0.partition ?? 0] }
        #expect(listing(ns) == ["/", "/a", "/a/two"])
    }

    @Test func overlayMergeWhiteoutsAndOpaqueDirectories() throws {
        let root = MemoryFileSystem()
        root.addDirectory("/merged")
        let lower = MemoryFileSystem(sourceName: "lower")
        lower.addFile("/lower/keep", "keep")
        lower.addFile("/lower/replaced", "old")
        lower.addFile("/lower/removed", "gone")
        lower.addFile("/lower/dir/a", "a")
        lower.addFile("/lower/opaque/hidden", "hidden")
        lower.addFile("/lower/merged-dir/from-lower", "l")
        let upper = MemoryFileSystem(sourceName: "upper")
        upper.addFile("/upper/replaced", "new")
        upper.addEntry("/upper/removed", metadata: Metadata(type: .characterDevice, permissions: 0, uid: 0, gid: 0, size: 0,
                                                            mtime: Timestamp(seconds: 0), inode: 0, device: DeviceNumber(major: 0, minor: 0)))
        upper.addEntry("/upper/dir", metadata: Metadata(type: .characterDevice, permissions: 0, uid: 0, gid: 0, size: 0,
                                                        mtime: Timestamp(seconds: 0), inode: 0, device: DeviceNumber(major: 0, minor: 0)))
        upper.addDirectory("/upper/opaque", xattrs: [ExtendedAttribute(name: "trusted.overlay.opaque", value: [0x79]),
                                                    ExtendedAttribute(name: "user.keep", value: [1])])
        upper.addFile("/upper/opaque/new", "n")
        upper.addFile("/upper/merged-dir/from-upper", "u")
        let p = plan([
            PlannedMount(where: "/", kind: .partition, partition: 1, declaredBy: "t"),
            PlannedMount(where: "/l", kind: .partition, partition: 2, declaredBy: "t"),
            PlannedMount(where: "/u", kind: .partition, partition: 3, declaredBy: "t"),
            PlannedMount(where: "/merged", kind: .overlay, lower: ["/l/lower"], upper: "/u/upper", declaredBy: "t"),
        ])
        let ns = try NamespaceFileSystem(plan: p) { [1: root, 2: lower, 3: upper][$0.partition ?? 0] }
        let merged = ns.entries().filter { $0.displayPath.hasPrefix("/merged") }
        #expect(merged.map(\.displayPath) == ["/merged", "/merged/keep", "/merged/merged-dir", "/merged/merged-dir/from-lower",
                                              "/merged/merged-dir/from-upper", "/merged/opaque", "/merged/opaque/new", "/merged/replaced"])
        let opaque = try #require(merged.first { $0.displayPath == "/merged/opaque" })
        #expect(opaque.metadata.xattrs.map(\.name) == ["user.keep"])
        let replaced = try #require(merged.first { $0.displayPath == "/merged/replaced" })
        #expect(try replaced.reader.readSmallFile(replaced.metadata.inode) == Array("new".utf8))
    }

    @Test func symlinkedBindSourceIsFollowedInsideTheNamespace() throws {
        let root = MemoryFileSystem()
        root.addSymlink("/data", target: "/mnt/data")
        root.addDirectory("/srv/www")
        root.addDirectory("/mnt/data")
        let data = MemoryFileSystem()
        data.addFile("/www/index.html", "hi")
        let p = plan([
            PlannedMount(where: "/", kind: .partition, partition: 1, declaredBy: "t"),
            PlannedMount(where: "/mnt/data", kind: .partition, partition: 2, declaredBy: "t"),
            PlannedMount(where: "/srv/www", kind: .bind, what: "/data/www", declaredBy: "t"),
        ])
        let ns = try NamespaceFileSystem(plan: p) { [1: root, 2: data][$0.partition ?? 0] }
        #expect(listing(ns).contains("/srv/www/index.html => /mnt/data/www/index.html"))
    }

    /// FAT names match case-insensitively, as the vfat driver matches them: a bind whose source
    /// is spelt in another case is applied (the namespace used to compare bytes and drop it,
    /// while the planner, asking the FAT reader, accepted it).
    @Test func fatBindSourceMatchesNamesAsTheFATDriverDoes() throws {
        let fat = try FATReader(source: FileSource(path: TestImages.path("fs-fat16.img")), name: "fs-fat16.img")
        let root = MemoryFileSystem()
        root.addDirectory("/boot")
        root.addDirectory("/efi")
        let p = plan([
            PlannedMount(where: "/", kind: .partition, partition: 1, declaredBy: "t"),
            PlannedMount(where: "/boot", kind: .partition, partition: 2, fstype: "vfat", declaredBy: "t"),
            PlannedMount(where: "/efi", kind: .bind, what: "/boot/boot/efi/BOOT", declaredBy: "t"),
        ])
        let ns = try NamespaceFileSystem(plan: p) { [1: root, 2: fat][$0.partition ?? 0] }
        #expect(ns.problems.isEmpty, "\(ns.problems)")
        #expect(listing(ns).contains("/efi/grub.cfg => /boot/Boot/EFI/BOOT/grub.cfg"))
        #expect(ns.exists(NamespacePath("/boot/BOOT/EFI/boot/GRUB.CFG")))
        #expect(!ns.exists(NamespacePath("/BOOT/Boot")))
    }

    /// A bind source below a mount point whose parent directory the root lacks resolves through
    /// the directory the walk shows there, so the planner (which asks the same engine) and the
    /// assembled namespace agree (the namespace used to drop the bind the planner accepted).
    @Test func bindSourceBelowAMountPointWithoutParent() throws {
        let root = MemoryFileSystem()
        root.addDirectory("/etc")
        let overlay = MemoryFileSystem()
        overlay.addFile("/etc/hostname", "homeassistant\n")
        let p = plan([
            PlannedMount(where: "/", kind: .partition, partition: 1, declaredBy: "t"),
            PlannedMount(where: "/mnt/overlay", kind: .partition, partition: 2, declaredBy: "t"),
            PlannedMount(where: "/etc/hostname", kind: .bind, what: "/mnt/overlay/etc/hostname", declaredBy: "t"),
        ])
        let ns = try NamespaceFileSystem(plan: p) { [1: root, 2: overlay][$0.partition ?? 0] }
        #expect(!ns.problems.contains { $0.message.contains("bind source") }, "\(ns.problems)")
        #expect(listing(ns).contains("/mnt/overlay/etc/hostname => /etc/hostname"))
    }
}
