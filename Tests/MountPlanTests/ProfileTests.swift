import Assembly
import DiskImage
import FileSystems
import Testing
@testable import MountPlan

private let whiteout = Metadata(type: .characterDevice, permissions: 0, uid: 0, gid: 0, size: 0, mtime: Timestamp(seconds: 0),
                                inode: 0, device: DeviceNumber(major: 0, minor: 0))
private let opaque = [ExtendedAttribute(name: "trusted.overlay.opaque", value: [0x79])]

/// A balenaOS root partition: a balena-engine data-root at /balena with the hostapp container
/// (base layer, top layer, -init layer, rw layer), /current -> hostapps/<cid>, units in the base layer.
func balenaRoot(current: Bool = true, mountID: String? = "mnt1") -> MemoryFileSystem {
    let fs = MemoryFileSystem(sourceName: "rootB")
    let ov = "/balena/overlay2"
    func layer(_ id: String, lowers: [String]) -> String {
        fs.addFile("\(ov)/\(id)/link", "S\(id)")
        if !lowers.isEmpty { fs.addFile("\(ov)/\(id)/lower", lowers.map { "l/S\($0)" }.joined(separator: ":")) }
        fs.addSymlink("\(ov)/l/S\(id)", target: "../\(id)/diff")
        fs.addDirectory("\(ov)/\(id)/diff")
        return "\(ov)/\(id)/diff"
    }
    let base = layer("base", lowers: [])
    let units = "\(base)/lib/systemd/system"
    fs.addFile("\(base)/etc/os-release", "ID=balena-os\n")
    fs.addFile("\(base)/etc/motd", "hidden\n")
    fs.addFile("\(base)/usr/share/doc/old", "hidden by opaque\n")
    fs.addFile("\(base)/etc/fstab", "/dev/root / auto defaults 1 1\nproc /proc proc defaults 0 0\n")
    fs.addFile("\(units)/multi-user.target", "[Unit]\n")
    for label in ["boot", "state", "data"] {
        fs.addFile("\(units)/resin-\(label).service",
                   "[Service]\nType=oneshot\nExecStart=/usr/bin/resin-partition-mounter --mount resin-\(label)\n[Install]\nWantedBy=multi-user.target\n")
        fs.addSymlink("\(base)/etc/systemd/system/multi-user.target.wants/resin-\(label).service", target: "/lib/systemd/system/resin-\(label).service")
    }
    for (name, target) in [("bind-etc-hostname.service", "/etc/hostname"), ("bind-home-root-.ssh.service", "/home/root/.ssh")] {
        fs.addFile("\(units)/\(name)", "[Service]\nExecStart=-/usr/bin/bindmount --target \(target) --bind-root /mnt/state/root-overlay --command mount\n")
        fs.addSymlink("\(base)/etc/systemd/system/multi-user.target.wants/\(name)", target: "/lib/systemd/system/\(name)")
    }
    fs.addFile("\(units)/bind-etc-dropbear.service", "[Service]\nExecStart=/usr/bin/bindmount --target /etc/dropbear --bind-root /mnt/state/root-overlay\n")
    fs.addFile("\(units)/var-lib-docker.mount", "[Mount]\nWhat=/mnt/data/docker\nWhere=/var/lib/docker\nType=none\nOptions=bind\n")
    fs.addSymlink("\(base)/etc/systemd/system/multi-user.target.wants/var-lib-docker.mount", target: "/lib/systemd/system/var-lib-docker.mount")
    let top = layer("top", lowers: ["base"])
    fs.addEntry("\(top)/etc/motd", metadata: whiteout)
    fs.addDirectory("\(top)/usr/share/doc", xattrs: opaque)
    fs.addFile("\(top)/usr/share/doc/new", "top\n")
    // A unit only in the -init layer: not part of the booted root.
    let initLayer = layer("mnt1-init", lowers: ["top", "base"])
    fs.addFile("\(initLayer)/lib/systemd/system/mnt-init.mount", "[Mount]\nWhat=/dev/sda1\nWhere=/mnt/init\n")
    fs.addSymlink("\(initLayer)/etc/systemd/system/multi-user.target.wants/mnt-init.mount", target: "/lib/systemd/system/mnt-init.mount")
    let rw = layer("mnt1", lowers: ["mnt1-init", "top", "base"])
    fs.addFile("\(rw)/etc/rw", "rw\n")
    let mounts = "/balena/image/overlay2/layerdb/mounts"
    if let mountID { fs.addFile("\(mounts)/cid1/mount-id", mountID) } else { fs.addDirectory("\(mounts)/cid1") }
    if current { fs.addSymlink("/current", target: "hostapps/cid1") }
    fs.addSymlink("/sbin/init", target: "../current/boot/init")
    return fs
}

/// The balenaOS MBR layout: boot, rootA (empty), rootB, extended, state, data.
func balenaDisk(root: MemoryFileSystem = balenaRoot(), uEnv: String? = "resin_root_part=3\n", rootA: Bool = false) -> FakeDisk {
    let disk = FakeDisk()
    let boot = MemoryFileSystem(formatName: "vfat")
    if let uEnv { boot.addFile("/resinOS_uEnv.txt", uEnv) }
    disk.add(PlanPartition(index: 1, partUUID: "ba1e0a05-01", fsType: "vfat", label: "resin-boot", size: 8 << 20), fs: boot)
    if rootA {
        disk.add(PlanPartition(index: 2, partUUID: "ba1e0a05-02", fsType: "ext4", label: "resin-rootA", size: 16 << 20), fs: balenaRoot())
    } else {
        disk.add(PlanPartition(index: 2, partUUID: "ba1e0a05-02", size: 16 << 20))
    }
    disk.add(PlanPartition(index: 3, partUUID: "ba1e0a05-03", fsType: "ext4", label: "resin-rootB", size: 16 << 20), fs: root)
    let state = MemoryFileSystem()
    state.addFile("/root-overlay/etc/hostname", "my-device\n")
    // /home/root/.ssh deliberately missing on the state partition.
    disk.add(PlanPartition(index: 5, partUUID: "ba1e0a05-05", fsType: "ext4", label: "balena-state", size: 8 << 20), fs: state)
    let data = MemoryFileSystem()
    data.addDirectory("/docker/overlay2")
    disk.add(PlanPartition(index: 6, partUUID: "ba1e0a05-06", fsType: "ext4", label: "resin-data", size: 32 << 20), fs: data)
    return disk
}

@Suite("firmware profiles")
struct ProfileTests {
    static func lines(_ plan: Plan) -> [String] {
        plan.mounts.map { m in
            [m.where, m.kind.rawValue, m.partition.map(String.init) ?? "-", m.what ?? (m.lower ?? []).joined(separator: ":")]
                .joined(separator: " ")
        }
    }

    @Test func balenaHostappRootServicesAndStateBinds() throws {
        let plan = try Planner.plan(balenaDisk())
        #expect(plan.profile == "balenaos")
        #expect(plan.root.partition == 3)
        #expect(plan.root.reason.contains("resin_root_part=3"))
        #expect(Self.lines(plan) == [
            "/ partition 3 ",
            "/ overlay - /balena/overlay2/mnt1/diff:/balena/overlay2/top/diff:/balena/overlay2/base/diff",
            "/mnt/sysroot/active partition 3 ",
            "/mnt/boot partition 1 ",
            "/mnt/data partition 6 ",
            "/mnt/state partition 5 ",
            "/etc/hostname bind - /mnt/state/root-overlay/etc/hostname",
            "/var/lib/docker bind - /mnt/data/docker",
        ], "\(Self.lines(plan))")
        let overlay = try #require(plan.mounts.first { $0.kind == .overlay })
        #expect(overlay.upper == nil && overlay.options == "ro")
        #expect(overlay.declaredBy.contains("/current -> hostapps/cid1"))
        // A balena-* label is found for the resin-state service.
        #expect(plan.mounts.first { $0.where == "/mnt/state" }?.declaredBy == "/lib/systemd/system/resin-state.service")
        // Not enabled, source missing, the -init layer's unit never seen.
        #expect(plan.skipped.contains { $0.where == "/etc/dropbear" && $0.reason == "unit not enabled" })
        #expect(plan.skipped.contains { $0.where == "/home/root/.ssh" && $0.reason.contains("missing") })
        #expect(!plan.skipped.contains { $0.where == "/mnt/init" } && !plan.mounts.contains { $0.where == "/mnt/init" })
        #expect(plan.skipped.contains { $0.where == "/proc" })
        #expect(!plan.warnings.contains { $0.contains("not modelled") }, "\(plan.warnings)")
    }

    @Test func balenaSlotFromEnvironmentAndOnlyContainer() throws {
        // rootA and rootB both hold hostapps: resin_root_part picks; without it there are two roots.
        let both = try Planner.plan(balenaDisk(rootA: true))
        #expect(both.root.partition == 3)
        let a = try Planner.plan(balenaDisk(uEnv: "resin_root_part=2\n", rootA: true))
        #expect(a.root.partition == 2)
        #expect(a.mounts.filter { $0.kind == .partition && $0.partition == 2 }.map(\.where) == ["/", "/mnt/sysroot/active"])
        // No /current: the only container.
        let plan = try Planner.plan(balenaDisk(root: balenaRoot(current: false)))
        #expect(plan.mounts.contains { $0.kind == .overlay && $0.declaredBy.contains("the only container") })
    }

    @Test func balenaWithoutMountIDFallsBackWithAWarning() throws {
        let plan = try Planner.plan(balenaDisk(root: balenaRoot(mountID: nil)))
        #expect(!plan.mounts.contains { $0.kind == .overlay })
        #expect(plan.mounts.first?.where == "/" && plan.mounts.first?.partition == 3)
        #expect(plan.warnings.contains { $0.contains("mount-id") && $0.contains("root partition itself") }, "\(plan.warnings)")
        // A hostile mount-id never becomes a path.
        let evil = try Planner.plan(balenaDisk(root: balenaRoot(mountID: "../../etc")))
        #expect(!evil.mounts.contains { $0.kind == .overlay })
    }

    @Test func mergedViewAppliesWhiteoutsOpaqueDirectoriesAndOrder() throws {
        let fs = balenaRoot()
        let layers = try ["mnt1", "top", "base"].map { id -> Layer in
            let inode = try #require(try fs.lookup("/balena/overlay2/\(id)/diff"))
            return Layer(reader: fs, inode: inode)
        }
        let merged = try NamespaceFileSystem(overlayOf: layers, name: "hostapp")
        #expect(try merged.lookup("/etc/motd") == nil)
        #expect(try merged.lookup("/usr/share/doc/old") == nil)
        let new = try #require(try merged.lookup("/usr/share/doc/new"))
        #expect(try merged.readSmallFile(new) == Array("top\n".utf8))
        let rw = try #require(try merged.lookup("/etc/rw"))
        #expect(try merged.readSmallFile(rw) == Array("rw\n".utf8))
        let etc = try #require(try merged.lookup("/etc"))
        let names = try merged.directoryEntries(of: etc).map { String(decoding: $0.name, as: UTF8.self) }.sorted()
        #expect(names == ["fstab", "os-release", "rw", "systemd"])
        #expect(try merged.metadata(of: etc).inode == etc)
        #expect(throws: FWError.self) { try merged.metadata(of: 999) }
        // Listing twice gives the same inode numbers.
        #expect(try merged.directoryEntries(of: etc) == merged.directoryEntries(of: etc))
    }

    /// An OSTree physical root: two deployments, two boot entries, the shared /var.
    static func ostreeDisk(entries: [(String, String)]? = nil) -> FakeDisk {
        let fs = MemoryFileSystem()
        for (csum, host) in [("aaa", "old"), ("bbb", "new")] {
            let d = "/ostree/deploy/tor/deploy/\(csum).0"
            fs.addFile("\(d)/etc/hostname", "\(host)\n")
            fs.addFile("\(d)/usr/lib/os-release", "ID=torizon\n")
            fs.addSymlink("\(d)/etc/os-release", target: "../usr/lib/os-release")
            fs.addFile("\(d)/etc/fstab", "LABEL=otaroot / ext4 defaults 0 0\n/dev/mmcblk0p2 /data auto defaults 0 0\n")
            fs.addSymlink("/ostree/boot.1.1/tor/boot\(csum)/0", target: "../../../deploy/tor/deploy/\(csum).0")
        }
        fs.addSymlink("/ostree/boot.1", target: "boot.1.1")
        fs.addSymlink("/boot/loader", target: "loader.0")
        let list = entries ?? [("ostree-1.conf", "version 1\noptions root=LABEL=otaroot ostree=/ostree/boot.1/tor/bootaaa/0\n"),
                               ("ostree-2.conf", "title new\nversion 10\noptions ostree=/ostree/boot.1/tor/bootbbb/0 quiet\n")]
        for (name, text) in list { fs.addFile("/boot/loader.0/entries/\(name)", text) }
        fs.addDirectory("/ostree/deploy/tor/var/lib/docker")
        let disk = FakeDisk()
        disk.add(PlanPartition(index: 1, partUUID: "05c0ffee-01", fsType: "ext4", label: "otaroot", size: 64 << 20), fs: fs)
        let data = MemoryFileSystem()
        data.addFile("/data.txt", "d")
        disk.add(PlanPartition(index: 2, partUUID: "05c0ffee-02", fsType: "ext4", label: "data", size: 8 << 20), fs: data)
        return disk
    }

    @Test func ostreeBootsTheHighestVersionDeployment() throws {
        let plan = try Planner.plan(Self.ostreeDisk())
        #expect(plan.profile == "ostree")
        #expect(plan.root.partition == 1)
        #expect(Self.lines(plan) == [
            "/ partition 1 ",
            "/ bind - /ostree/deploy/tor/deploy/bbb.0",
            "/sysroot partition 1 ",
            "/boot bind - /sysroot/boot",
            "/var bind - /sysroot/ostree/deploy/tor/var",
            "/data partition 2 ",
        ], "\(Self.lines(plan))")
        let bind = plan.mounts[1]
        #expect(bind.declaredBy.hasPrefix("/boot/loader/entries/ostree-2.conf, version 10, first of 2 entries"))
        // The fstab line came from the deployment.
        #expect(plan.mounts.last?.declaredBy == "/etc/fstab:2")
        #expect(plan.warnings.isEmpty, "\(plan.warnings)")
    }

    @Test func ostreeVersionOrderAndBrokenEntries() {
        #expect(BootLoaderEntries.compareVersions("10", "9") > 0)
        #expect(BootLoaderEntries.compareVersions("1.10", "1.9") > 0)
        #expect(BootLoaderEntries.compareVersions("2", "2") == 0)
        // A dangling ostree= target: the physical root (no fstab of its own) with a warning.
        let broken = Self.ostreeDisk(entries: [("a.conf", "version 1\noptions ostree=/ostree/boot.1/tor/nope/0\n")])
        let plan = try? Planner.plan(broken)
        #expect(plan?.mounts.map(\.where) == ["/"])
        #expect(plan?.warnings.contains { $0.contains("OSTree") && $0.contains("nope") } == true)
        // An entry leading outside /ostree/deploy is refused.
        let outside = Self.ostreeDisk(entries: [("a.conf", "version 1\noptions ostree=/boot\n")])
        #expect((try? Planner.plan(outside))?.mounts.contains { $0.kind == .bind && $0.where == "/" } == false)
    }

    @Test func canonicalPathsStayInsideAndStopOnLoops() {
        let fs = MemoryFileSystem()
        fs.addDirectory("/a/b")
        fs.addSymlink("/a/up", target: "../../../a/b")
        fs.addSymlink("/loop1", target: "loop2")
        fs.addSymlink("/loop2", target: "loop1")
        var warnings: [String] = []
        #expect(ProfilePaths.canonical("/a/up", in: fs, warnings: &warnings) == "/a/b")
        #expect(ProfilePaths.canonical("/loop1", in: fs, warnings: &warnings) == nil)
        #expect(ProfilePaths.canonical("/missing/x", in: fs, warnings: &warnings) == nil)
        #expect(warnings.isEmpty)
        #expect(!ProfilePaths.isPlainName("..") && !ProfilePaths.isPlainName("a/b") && ProfilePaths.isPlainName("abc"))
    }
}

/// A disk whose partitions can also hold a filesystem at a byte offset (OpenWrt's rootfs_data).
final class OffsetDisk: PlanningDisk {
    var partitions: [PlanPartition] = []
    var filesystems: [Int: MemoryFileSystem] = [:]
    var raw: [Int: [UInt8]] = [:]
    var atOffset: [Int: (UInt64, MemoryFileSystem)] = [:]
    func fileSystem(partition index: Int) throws -> (any FileSystemReader)? { filesystems[index] }
    func rawBytes(partition index: Int, count: Int) throws -> [UInt8] { Array((raw[index] ?? []).prefix(count)) }
    func fileSystem(partition index: Int, offset: UInt64) throws -> (any FileSystemReader)? {
        guard let (o, fs) = atOffset[index], o == offset else { return nil }
        return fs
    }
}

extension ProfileTests {
    /// squashfs superblock bytes: "hsqs", bytes_used (u64 LE) at 40.
    static func squashfsHead(bytesUsed: UInt64) -> [UInt8] {
        var head = [UInt8](repeating: 0, count: 96)
        head[0...3] = [0x68, 0x73, 0x71, 0x73]
        for i in 0..<8 { head[40 + i] = UInt8(truncatingIfNeeded: bytesUsed >> (8 * UInt64(i))) }
        return head
    }

    static func openwrtDisk(bytesUsed: UInt64 = 200_000, dataAt: UInt64? = 262_144, upper: Bool = true) -> OffsetDisk {
        let disk = OffsetDisk()
        let kernel = MemoryFileSystem()
        kernel.addFile("/boot/vmlinuz", "k")
        disk.partitions.append(PlanPartition(index: 1, fsType: "ext4", label: "kernel", size: 16 << 20))
        disk.filesystems[1] = kernel
        let rom = linuxRoot("rom")
        rom.addFile("/etc/openwrt_release", "DISTRIB_ID='OpenWrt'\n")
        rom.addFile("/etc/config/fstab", "config global\n")
        disk.partitions.append(PlanPartition(index: 2, fsType: "squashfs", size: 64 << 20))
        disk.filesystems[2] = rom
        disk.raw[2] = squashfsHead(bytesUsed: bytesUsed)
        if let dataAt {
            let data = MemoryFileSystem(formatName: "ext4")
            if upper { data.addFile("/upper/etc/config/network", "lan\n") }
            disk.atOffset[2] = (dataAt, data)
        }
        return disk
    }

    @Test func openwrtRootfsDataOverlayAtTheAlignedOffset() throws {
        #expect(try OpenWrtProfile.squashfsEnd(Self.squashfsHead(bytesUsed: 200_000)) == 262_144)
        #expect(try OpenWrtProfile.squashfsEnd(Self.squashfsHead(bytesUsed: 262_144)) == 262_144)
        #expect(try OpenWrtProfile.squashfsEnd(Self.squashfsHead(bytesUsed: UInt64.max)) == nil)
        #expect(try OpenWrtProfile.squashfsEnd([UInt8](repeating: 0, count: 96)) == nil)
        #expect(throws: FWError.self) { try OpenWrtProfile.squashfsEnd([0x68, 0x73, 0x71, 0x73]) }
        let plan = try Planner.plan(Self.openwrtDisk())
        #expect(plan.profile == "openwrt" && plan.root.partition == 2)
        #expect(Self.lines(plan) == [
            "/ partition 2 ", "/rom partition 2 ", "/overlay partition 2 ", "/ overlay - /rom",
            "/rom partition 2 ", "/overlay partition 2 ", "/boot partition 1 ", "/boot bind - /boot/boot",
        ], "\(Self.lines(plan))")
        #expect(plan.mounts.filter { $0.where == "/overlay" }.allSatisfy { $0.offset == 262_144 && $0.fstype == "ext4" })
        #expect(plan.mounts.first { $0.kind == .overlay }?.upper == "/overlay/upper")
        #expect(plan.warnings.isEmpty, "\(plan.warnings)")
    }

    static let ucIFstab = """
        # block-mount
        config global
        \toption auto_mount '1'

        config mount
        \toption target '/mnt/data'
        \toption uuid '0a0b0c0d-0000-4000-8000-000000000003'
        \toption options 'rw,noatime'
        \toption enabled '1'

        config mount
        \toption target "/mnt/old"
        \toption label oldstuff
        \toption enabled '0'

        config mount 'bydevice'
        \toption target '/mnt/dev'
        \toption device '/dev/sda4'

        config swap
        \toption device '/dev/sda5'

        config mount 'broken
        """

    @Test func uciConfigParsesQuotesCommentsAndReportsBadLines() {
        let config = UCIConfig(Array(Self.ucIFstab.utf8), file: "/etc/config/fstab")
        #expect(config.sections.map(\.type) == ["global", "mount", "mount", "mount", "swap"])
        #expect(config.sections[2].options["target"] == "/mnt/old" && config.sections[2].options["label"] == "oldstuff")
        #expect(config.sections[3].name == "bydevice" && config.sections[1].line == 5)
        #expect(config.warnings.count == 1 && config.warnings[0].line == 23, "\(config.warnings)")
        #expect(UCIConfig.words(Array(#"option a "x\"y" # c"#.utf8)) == ["option", "a", "x\"y"])
        #expect(UCIConfig.words(Array("option a 'b".utf8)) == nil)
        let fstab = UCIFstab(Array(Self.ucIFstab.utf8))
        #expect(fstab.entries.map(\.device) == ["UUID=0a0b0c0d-0000-4000-8000-000000000003", "LABEL=oldstuff", "/dev/sda4", "/dev/sda5"])
        #expect(fstab.entries.map(\.enabled) == [true, false, true, true])
        #expect(fstab.entries[0].options == ["rw", "noatime"])
    }

    @Test func openwrtUCIFstabMountsAreAppliedDisabledAndSwapReported() throws {
        let disk = Self.openwrtDisk()
        (disk.filesystems[2])?.addFile("/etc/config/fstab", Self.ucIFstab)
        let data = MemoryFileSystem(formatName: "ext4")
        data.addFile("/hello", "data\n")
        disk.partitions.append(PlanPartition(index: 3, fsType: "ext4", fsUUID: "0a0b0c0d-0000-4000-8000-000000000003", size: 8 << 20))
        disk.filesystems[3] = data
        let plan = try Planner.plan(disk)
        let mount = try #require(plan.mounts.first { $0.where == "/mnt/data" })
        #expect(mount.partition == 3 && mount.options == "rw,noatime" && mount.declaredBy == "/etc/config/fstab:5")
        #expect(plan.skipped.contains { $0.where == "/mnt/old" && $0.reason.contains("disabled") && $0.declaredBy == "/etc/config/fstab:11" })
        #expect(plan.skipped.contains { $0.where == "swap" && $0.reason == "swap on /dev/sda5" })
        #expect(plan.skipped.contains { $0.where == "/mnt/dev" && $0.reason.contains("not found") }, "no partition 4: \(plan.skipped)")
        #expect(plan.warnings.contains { $0.contains("/etc/config/fstab:23") })
    }

    @Test func openwrtExtrootReplacesRootfsData() throws {
        let disk = Self.openwrtDisk()
        let ext = MemoryFileSystem(formatName: "ext4")
        ext.addFile("/upper/etc/extroot-was-here", "yes\n")
        disk.partitions.append(PlanPartition(index: 3, fsType: "ext4", label: "extroot", size: 8 << 20))
        disk.filesystems[3] = ext
        // The extroot is declared in rootfs_data's upper/, as `block extroot` reads it.
        let data = try #require(disk.atOffset[2]?.1)
        data.addFile("/upper/etc/config/fstab", "config mount\n\toption target '/overlay'\n\toption label 'extroot'\n")
        let plan = try Planner.plan(disk)
        let overlays = plan.mounts.filter { $0.where == "/overlay" }
        #expect(overlays.count == 2 && overlays.allSatisfy { $0.partition == 3 && $0.offset == nil })
        #expect(overlays.first?.declaredBy == "OpenWrt extroot: /etc/config/fstab:1 (option target '/overlay', LABEL=extroot)")
        #expect(plan.mounts.first { $0.kind == .overlay }?.declaredBy.contains("the extroot") == true)
        #expect(!plan.skipped.contains { $0.where == "/overlay" })
        // Disabled: rootfs_data stays, and the skip is reported.
        data.addFile("/upper/etc/config/fstab", "config mount\n\toption target '/overlay'\n\toption label 'extroot'\n\toption enabled '0'\n")
        let off = try Planner.plan(disk)
        #expect(off.mounts.filter { $0.where == "/overlay" }.allSatisfy { $0.partition == 2 && $0.offset == 262_144 })
        #expect(off.skipped.contains { $0.where == "/overlay" && $0.reason.contains("disabled") })
    }

    @Test func openwrtRootfsDataAsItsOwnPartition() throws {
        let disk = Self.openwrtDisk(dataAt: nil)
        let data = MemoryFileSystem(formatName: "f2fs")
        data.addFile("/upper/etc/config/network", "lan\n")
        disk.partitions.append(PlanPartition(index: 3, name: "rootfs_data", fsType: "f2fs", size: 128 << 20))
        disk.filesystems[3] = data
        let plan = try Planner.plan(disk)
        let overlays = plan.mounts.filter { $0.where == "/overlay" }
        #expect(overlays.count == 2 && overlays.allSatisfy { $0.partition == 3 && $0.offset == nil && $0.fstype == "f2fs" })
        #expect(overlays.first?.declaredBy.contains("rootfs_data, partition 3") == true, "\(overlays)")
    }

    @Test func openwrtWithoutRootfsDataIsTheSquashfsAlone() throws {
        for disk in [Self.openwrtDisk(dataAt: nil), Self.openwrtDisk(dataAt: 131_072), Self.openwrtDisk(upper: false)] {
            let plan = try Planner.plan(disk)
            #expect(!plan.mounts.contains { $0.kind == .overlay || $0.where == "/overlay" })
            #expect(plan.mounts.first?.where == "/" && plan.mounts.first?.partition == 2)
            #expect(plan.warnings.contains { $0.contains("squashfs alone") }, "\(plan.warnings)")
        }
    }
}
