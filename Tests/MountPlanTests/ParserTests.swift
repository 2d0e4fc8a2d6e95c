import DiskImage
import Testing
@testable import MountPlan

@Suite("fstab parser")
struct FstabTests {
    @Test func parsesAllSpecFormsAndEscapes() {
        let text = """
        # comment
        proc            /proc           proc    defaults          0       0
        PARTUUID=1a2b3c4d-01  /boot/firmware  vfat    defaults          0       2
        UUID=0a1b-2c3d /mnt/My\\040Disk auto noauto,ro 0 0
        LABEL=hassos-data\t/mnt/data ext4 commit=30
          /dev/mmcblk0p4 /data
        /dev/disk/by-partlabel/hassos\\x2doverlay /mnt/overlay ext4 defaults 0 0
        broken
        """
        let (entries, warnings) = Fstab.parse(Array(text.utf8))
        #expect(entries.count == 6)
        #expect(warnings.count == 1)
        #expect(warnings.first?.line == 8)
        #expect(entries[0].type == "proc")
        #expect(DeviceSpec(parsing: entries[1].spec) == .partUUID("1a2b3c4d-01"))
        #expect(entries[2].mountPoint == "/mnt/My Disk")
        #expect(entries[2].isNoAuto)
        #expect(entries[3].options == ["commit=30"])
        #expect(entries[4].type == "auto")
        #expect(DeviceSpec(parsing: entries[4].spec).partitionNumber == 4)
        #expect(DeviceSpec(parsing: entries[5].spec) == .partLabel("hassos-overlay"))
    }

    @Test func rejectsGarbageWithoutCrashing() {
        var bytes = [UInt8](repeating: 0x41, count: 10 << 20)
        bytes += Array("\n\u{0}\u{1}\u{2} / ext4\n/dev/sda1 / ext4 defaults 0 1\n".utf8)
        let (entries, warnings) = Fstab.parse(bytes)
        #expect(entries.count == 1)
        #expect(warnings.count == 2)
    }

    @Test func devicePathPartitionNumbers() {
        let cases: [(String, Int?)] = [("/dev/sda3", 3), ("/dev/vda1", 1), ("/dev/mmcblk0p2", 2), ("/dev/nvme0n1p4", 4),
                                       ("/dev/mmcblk0", nil), ("/dev/nvme0n1", nil), ("/dev/sda", nil), ("/dev/xvdb7", 7)]
        for (path, n) in cases {
            #expect(DeviceSpec(parsing: path).partitionNumber == n, "\(path)")
        }
        #expect(DeviceSpec(parsing: "/dev/root") == .root)
        #expect(DeviceSpec(parsing: "rootfs") == .root)
        #expect(DeviceSpec(parsing: "/dev/disk/by-uuid/abcd") == .uuid("abcd"))
    }
}

@Suite("systemd units")
struct SystemdUnitTests {
    @Test func unescapesUnitNames() {
        #expect(SystemdName.unescapePath("etc-NetworkManager-system\\x2dconnections.mount") == "/etc/NetworkManager/system-connections")
        #expect(SystemdName.unescapePath("etc-modules\\x2dload.d.mount") == "/etc/modules-load.d")
        #expect(SystemdName.unescapePath("root-.ssh.mount") == "/root/.ssh")
        #expect(SystemdName.unescapePath("-.mount") == "/")
        #expect(SystemdName.unescapePath("mnt-data.mount") == "/mnt/data")
    }

    @Test func escapesPathsLikeSystemdEscape() {
        #expect(SystemdName.escapePath("/etc/NetworkManager/system-connections") == "etc-NetworkManager-system\\x2dconnections")
        #expect(SystemdName.escapePath("/root/.ssh") == "root-.ssh")
        #expect(SystemdName.escapePath("/.hidden") == "\\x2ehidden")
        #expect(SystemdName.escapePath("/") == "-")
        #expect(SystemdName.escapePath("/var/lib/docker/") == "var-lib-docker")
        for path in ["/etc/NetworkManager/system-connections", "/etc/modules-load.d", "/mnt/My Disk", "/var/lib/docker"] {
            #expect(SystemdName.unescapePath(SystemdName.escapePath(path) + ".mount") == path)
        }
    }

    @Test func parsesSectionsContinuationsAndLists() {
        let text = """
        [Unit]
        Description=Data
        Wants=a.service \\
          b.service
        # comment
        ; other comment
        Wants=c.service
        [Mount]
        What=/dev/disk/by-label/hassos-data
        Where=/mnt/data
        Options=commit=30
        garbage line
        [Install]
        WantedBy=local-fs.target
        """
        let (assignments, warnings) = UnitFile.parse(Array(text.utf8), file: "mnt-data.mount")
        let unit = UnitFile(name: "mnt-data.mount", path: "/usr/lib/systemd/system/mnt-data.mount", assignments: assignments)
        #expect(warnings.count == 1)
        #expect(warnings.first?.line == 12)
        #expect(unit.list("Unit", "Wants") == ["a.service", "b.service", "c.service"])
        #expect(unit.value("Mount", "What") == "/dev/disk/by-label/hassos-data")
        #expect(unit.list("Install", "WantedBy") == ["local-fs.target"])
        var withDropIn = unit
        withDropIn.assignments += UnitFile.parse(Array("[Mount]\nOptions=ro\n[Unit]\nWants=\nWants=d.service\n".utf8), file: "override.conf").assignments
        #expect(withDropIn.value("Mount", "Options") == "ro")
        #expect(withDropIn.list("Unit", "Wants") == ["d.service"])
    }
}

@Suite("boot environments")
struct BootEnvironmentTests {
    @Test func parsesGrubenv() throws {
        var text = "# GRUB Environment Block\nORDER=B A\nA_OK=1\nA_TRY=0\nB_OK=1\nB_TRY=1\n"
        text += String(repeating: "#", count: 1024 - text.utf8.count)
        let env = try #require(GrubEnvironment.parse(Array(text.utf8)))
        #expect(env["ORDER"] == "B A")
        #expect(env["B_TRY"] == "1")
        #expect(GrubEnvironment.parse(Array(repeating: 0, count: 1024)) == nil)
    }

    static func ubootEnv(_ pairs: [String], size: Int, redundant: Bool = false, flags: UInt8 = 1) -> [UInt8] {
        var data: [UInt8] = []
        for p in pairs { data += Array(p.utf8) + [0] }
        data.append(0)
        let header = redundant ? 5 : 4
        data += [UInt8](repeating: 0, count: size - header - data.count)
        let crc = CRC32.checksum(data)
        var out: [UInt8] = [UInt8(crc & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 24)]
        if redundant { out.append(flags) }
        return out + data
    }

    @Test func findsUBootEnvironment() throws {
        let env = Self.ubootEnv(["BOOT_ORDER=B A", "BOOT_A_LEFT=3", "BOOT_B_LEFT=0"], size: 0x4000)
        let found = try #require(UBootEnvironment.find(in: env + [UInt8](repeating: 0, count: 0x10000)))
        #expect(found.size == 0x4000)
        #expect(found.variables["BOOT_ORDER"] == "B A")
        #expect(found.variables["BOOT_B_LEFT"] == "0")
    }

    @Test func redundantEnvironmentNewerCopyWins() throws {
        let old = Self.ubootEnv(["mender_boot_part=2"], size: 0x2000, redundant: true, flags: 4)
        let new = Self.ubootEnv(["mender_boot_part=3"], size: 0x2000, redundant: true, flags: 5)
        let found = try #require(UBootEnvironment.find(in: old + new))
        #expect(found.variables["mender_boot_part"] == "3")
        let found2 = try #require(UBootEnvironment.find(in: new + old))
        #expect(found2.variables["mender_boot_part"] == "3")
    }

    @Test func zeroedOrCorruptEnvironmentIsNotFound() {
        #expect(UBootEnvironment.find(in: [UInt8](repeating: 0, count: 0x10000)) == nil)
        var env = Self.ubootEnv(["BOOT_ORDER=A B"], size: 0x2000)
        env[10] ^= 0xFF
        #expect(UBootEnvironment.find(in: env) == nil)
    }

    @Test func kernelCommandLine() {
        let cmd = "console=tty0 root=PARTUUID=8d3d53e3-6d49-4c38-8349-aff6859e82fd rootfstype=erofs ro rauc.slot=A quiet x=\"a b\""
        #expect(KernelCommandLine.value("root", in: cmd) == "PARTUUID=8d3d53e3-6d49-4c38-8349-aff6859e82fd")
        #expect(KernelCommandLine.value("rauc.slot", in: cmd) == "A")
        #expect(KernelCommandLine.value("x", in: cmd) == "a b")
        #expect(KernelCommandLine.value("missing", in: cmd) == nil)
    }
}
