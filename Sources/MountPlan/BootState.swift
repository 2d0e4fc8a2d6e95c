import DiskImage
import FileSystems

/// The bootloader state found on the disk's non-root partitions (and in the U-Boot environment a
/// root's `/etc/fw_env.config` names), read once and handed to every slot convention.
struct BootState {
    /// A parsed environment and where it was read ("/EFI/BOOT/grubenv on partition 1 (boot)").
    struct Environment {
        var variables: [String: String]
        var location: String
    }

    /// A small file read from a boot partition.
    struct BootFile {
        var partition: Int
        var text: String
        /// "/cmdline.txt on partition 2 (bootA)".
        var location: String
    }

    var grub: Environment?
    /// The first valid U-Boot environment in a raw partition or a `uboot.env`/`boot.env` file.
    var uboot: Environment?
    /// The U-Boot environment named by a root's `/etc/fw_env.config` (RAUC, SWUpdate,
    /// libubootenv), the newer valid copy of a redundant pair.
    var configuredUBoot: Environment?
    /// `resinOS_uEnv.txt`, `bootenv`, `uEnv.txt` merged (first file's value wins).
    var textEnv = Environment(variables: [:], location: "")
    /// Every `cmdline.txt`, in partition order.
    var cmdlines: [BootFile] = []
    /// The Raspberry Pi firmware's `autoboot.txt` (the first FAT partition holding one).
    var autoboot: BootFile?
    /// Kernel command lines of boot menus (`extlinux.conf` APPEND lines, `grub.cfg` linux lines).
    var menuCommandLines: [BootFile] = []

    /// Files on boot partitions that record which root boots.
    static let bootFiles = ["/EFI/BOOT/grubenv", "/boot/grub/grubenv", "/grub/grubenv", "/grubenv", "/EFI/BOOT/grub/grubenv",
                            "/cmdline.txt", "/resinOS_uEnv.txt", "/bootenv", "/uEnv.txt", "/uboot.env", "/boot.env",
                            "/autoboot.txt", "/extlinux/extlinux.conf", "/boot/extlinux/extlinux.conf",
                            "/EFI/BOOT/grub.cfg", "/boot/grub/grub.cfg", "/grub/grub.cfg"]

    /// Reads the boot files of every partition that is not a root candidate, the raw partitions'
    /// U-Boot environments, and the environment the first candidate's `/etc/fw_env.config` names.
    static func collect(disk: any PlanningDisk, candidates: [PlanPartition], warnings: inout [String]) -> BootState {
        var state = BootState()
        for p in disk.partitions where !candidates.contains(where: { $0.index == p.index }) {
            if p.fsType == nil, p.size > 0 {
                // A raw partition may hold a U-Boot environment (HAOS hassos-bootstate).
                do {
                    if state.uboot == nil, let found = UBootEnvironment.find(in: try disk.rawBytes(partition: p.index, count: 0x80000)) {
                        state.uboot = Environment(variables: found.variables, location: "U-Boot environment in \(p.displayName)")
                    }
                } catch {
                    warnings.append("\(p.displayName): unreadable (\(FWError(error).message)); no U-Boot environment looked for in it")
                }
                continue
            }
            guard let fs = disk.openedFileSystem(p.index) else { continue }
            for path in bootFiles {
                state.read(path, from: fs, partition: p, warnings: &warnings)
            }
        }
        for c in candidates {
            guard let fs = disk.openedFileSystem(c.index) else { continue }
            let paths = RootPaths(disk: disk, root: c.index, fs: fs)
            // The first root with a fw_env.config names the environment (the slots share it).
            let named = FwEnvConfig.environment(paths: paths, disk: disk, warnings: &warnings)
            if named.config {
                state.configuredUBoot = named.environment
                break
            }
        }
        return state
    }

    private mutating func read(_ path: String, from fs: any FileSystemReader, partition p: PlanPartition, warnings: inout [String]) {
        let label = "\(path) on \(p.displayName)"
        let bytes: [UInt8]
        do {
            guard let inode = try fs.lookup(path) else { return }
            bytes = try fs.readSmallFile(inode, limit: 1 << 20)
        } catch {
            // The bootloader would not read it either; say so rather than choose silently.
            warnings.append("\(label): unreadable (\(FWError(error).message)); not used for the root choice")
            return
        }
        let text = { String(decoding: bytes, as: UTF8.self) }
        if path.hasSuffix("grubenv") {
            if grub == nil, let env = GrubEnvironment.parse(bytes) { grub = Environment(variables: env, location: label) }
        } else if path == "/cmdline.txt" {
            cmdlines.append(BootFile(partition: p.index, text: text(), location: label))
        } else if path == "/autoboot.txt" {
            if autoboot == nil { autoboot = BootFile(partition: p.index, text: text(), location: label) }
        } else if path.hasSuffix(".env") {
            if uboot == nil, let found = UBootEnvironment.find(in: bytes) { uboot = Environment(variables: found.variables, location: label) }
        } else if path.hasSuffix("extlinux.conf") || path.hasSuffix("grub.cfg") {
            menuCommandLines += Self.menuLines(text(), grub: path.hasSuffix("grub.cfg")).map { BootFile(partition: p.index, text: $0, location: label) }
        } else {
            textEnv.variables.merge(UBootEnvironment.parseText(bytes)) { a, _ in a }
            textEnv.location = label
        }
    }

    /// The kernel command lines of a boot menu: `APPEND`/`append` lines of extlinux.conf, the
    /// arguments after the kernel path of grub.cfg's `linux`/`linuxefi` lines.
    static func menuLines(_ text: String, grub: Bool) -> [String] {
        var lines: [String] = []
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).prefix(10_000) {
            let words = raw.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let first = words.first else { continue }
            if grub, first == "linux" || first == "linuxefi" || first == "linux16" {
                lines.append(words.dropFirst(2).joined(separator: " "))
            } else if !grub, first.lowercased() == "append" {
                lines.append(words.dropFirst().joined(separator: " "))
            }
        }
        return lines
    }
}

/// Paths of a root candidate's booted namespace read from the partitions its `/etc/fstab` mounts
/// there (the longest mount point holding the path), else from the root itself: where RAUC's
/// status file, a grubenv or a `fw_env.config` environment file lives.
struct RootPaths {
    let disk: any PlanningDisk
    let root: Int
    let fs: any FileSystemReader

    /// The partition and the path inside it that hold `path` of the booted namespace.
    func locate(_ path: String, warnings: inout [String]) -> (partition: Int, path: String) {
        var best: (partition: Int, path: String, depth: Int) = (root, path, 0)
        let fstab = ProfilePaths.reading("/etc/fstab", &warnings) { () -> [UInt8]? in
            guard let inode = try fs.lookup(Array("/etc/fstab".utf8), followLast: true) else { return nil }
            return try fs.readSmallFile(inode, limit: 1 << 20)
        }
        guard let fstab else { return (root, path) }
        let resolver = DeviceResolver(partitions: disk.partitions, rootPartition: root)
        for entry in Fstab.parse(fstab).entries {
            let mountPoint = Planner.normalise(entry.mountPoint)
            guard mountPoint != "/", Planner.isUnder(path, mountPoint), Planner.depth(mountPoint) > best.depth,
                  case .partition(let p, _) = resolver.resolve(DeviceSpec(parsing: entry.spec)) else { continue }
            best = (p, String(path.dropFirst(mountPoint.count)), Planner.depth(mountPoint))
        }
        return (best.partition, best.path)
    }

    /// A small file of the booted namespace (at most 1 MiB): its bytes and "PATH (partition N)",
    /// nil when it does not exist; an unreadable one is a warning. A symlink with an absolute
    /// target is followed through the mounts again (Mender's `/etc/fw_env.config ->
    /// /data/u-boot/fw_env.config`), at most `hops` times.
    func read(_ path: String, hops: Int = 8, warnings: inout [String]) -> (bytes: [UInt8], location: String)? {
        let (index, inner) = locate(path, warnings: &warnings)
        let name = disk.partitions.first { $0.index == index }?.displayName ?? "partition \(index)"
        let location = index == root ? "\(path) on \(name)" : "\(path) (\(inner) on \(name))"
        guard let target = index == root ? fs : disk.openedFileSystem(index) else { return nil }
        if hops > 0, let link = ProfilePaths.symlinkTarget(inner, in: target, warnings: &warnings), link.hasPrefix("/") {
            return read(Planner.normalise(link), hops: hops - 1, warnings: &warnings).map { ($0.bytes, "\(path) -> \($0.location)") }
        }
        let bytes = ProfilePaths.reading(location, &warnings) { () -> [UInt8]? in
            guard let inode = try target.lookup(Array(inner.utf8), followLast: true) else { return nil }
            return try target.readSmallFile(inode, limit: 1 << 20)
        }
        return bytes.map { ($0, location) }
    }
}

extension FwEnvConfig {
    /// The environment a root's `/etc/fw_env.config` names: each copy read from a file of the
    /// booted namespace, a partition, or the whole disk at its offset; of two valid copies the
    /// newer (`UBootEnvironment.newer`). `config` is false when the root has no fw_env.config;
    /// a config whose copies hold no valid environment is a warning.
    static func environment(paths: RootPaths, disk: any PlanningDisk, warnings: inout [String]) -> (config: Bool, environment: BootState.Environment?) {
        guard let config = paths.read("/etc/fw_env.config", warnings: &warnings) else { return (false, nil) }
        let copies = parse(config.bytes)
        guard !copies.isEmpty else {
            warnings.append("\(config.location): no `DEVICE OFFSET SIZE` line; no U-Boot environment read from it")
            return (true, nil)
        }
        var valid: [(found: UBootEnvironment.Found, location: String)] = []
        var problems: [String] = []
        for copy in copies {
            let (bytes, location) = read(copy, paths: paths, disk: disk, problems: &problems)
            guard let bytes else { continue }
            guard let found = UBootEnvironment.parse(bytes, offset: 0, size: copy.size) else {
                problems.append("\(location): no valid environment (CRC-32 mismatch or empty)")
                continue
            }
            valid.append((found, location))
        }
        guard var best = valid.first else {
            warnings.append("\(config.location) names no readable U-Boot environment: " + problems.joined(separator: "; "))
            return (true, nil)
        }
        if valid.count == 2 {
            let newer = UBootEnvironment.newer(valid[0].found, valid[1].found) == valid[0].found ? 0 : 1
            best = valid[newer]
            let other = valid[1 - newer]
            func flags(_ f: UBootEnvironment.Found) -> String { f.flags.map(String.init) ?? "-" }
            best.location += " (redundant copy, newer: flags \(flags(best.found)) vs \(flags(other.found)))"
        } else if copies.count == 2 {
            best.location += " (the other redundant copy is not valid)"
        }
        return (true, BootState.Environment(variables: best.found.variables, location: "U-Boot environment \(best.location), named by \(config.location)"))
    }

    /// The bytes of one copy and a description of where they were read.
    private static func read(_ copy: Copy, paths: RootPaths, disk: any PlanningDisk, problems: inout [String]) -> ([UInt8]?, String) {
        let at = "0x\(String(copy.offset, radix: 16))"
        func fail(_ what: String, _ why: String) -> ([UInt8]?, String) {
            problems.append("\(what): \(why)")
            return (nil, what)
        }
        let spec = DeviceSpec(parsing: copy.device)
        if case .other(let path) = spec {
            guard let file = paths.read(path, warnings: &problems) else { return fail(path, "not found") }
            let start = Int(clamping: copy.offset)
            guard start < file.bytes.count, file.bytes.count - start >= copy.size else {
                return fail("\(file.location) at \(at)", "the file (\(file.bytes.count) bytes) ends before the copy does")
            }
            return (Array(file.bytes[start..<(start + copy.size)]), "\(file.location) at \(at)")
        }
        do {
            if case .partition(let index, _) = DeviceResolver(partitions: disk.partitions, rootPartition: paths.root).resolve(spec) {
                let name = disk.partitions.first { $0.index == index }?.displayName ?? "partition \(index)"
                let (end, overflow) = copy.offset.addingReportingOverflow(UInt64(copy.size))
                guard !overflow, end <= 64 << 20 else { return fail("\(name) at \(at)", "more than 64 MiB into the partition, not read") }
                let bytes = try disk.rawBytes(partition: index, count: Int(end))
                guard bytes.count == Int(end) else { return fail("\(name) at \(at)", "past the end of the partition") }
                return (Array(bytes[Int(copy.offset)...]), "in \(name) at \(at)")
            }
            guard isWholeDisk(copy.device) else { return fail(copy.device, "not a partition or the whole disk of this image") }
            let bytes = try disk.rawDiskBytes(at: copy.offset, count: copy.size)
            guard bytes.count == copy.size else { return fail("\(copy.device) at \(at)", "past the end of the disk") }
            return (bytes, "on the disk (\(copy.device)) at \(at)")
        } catch {
            return fail("\(copy.device) at \(at)", "unreadable (\(FWError(error).message))")
        }
    }

    /// `/dev/mmcblk0`, `/dev/sda`, `/dev/vda`, `/dev/nvme0n1`: the boot disk itself (not an eMMC
    /// boot area such as `/dev/mmcblk0boot0`, which is not part of the image).
    static func isWholeDisk(_ device: String) -> Bool {
        guard device.hasPrefix("/dev/") else { return false }
        let name = device.dropFirst(5)
        func digits(_ s: Substring) -> Bool { !s.isEmpty && s.allSatisfy(\.isASCIIDigitCharacter) }
        if name.hasPrefix("mmcblk") { return digits(name.dropFirst(6)) }
        if name.hasPrefix("nvme") {
            let rest = name.dropFirst(4)
            guard let split = rest.firstIndex(of: "n") else { return false }
            return digits(rest[..<split]) && digits(rest[rest.index(after: split)...])
        }
        return name.count == 3 && ["sd", "vd", "hd"].contains(String(name.prefix(2))) && name.last.map { $0 >= "a" && $0 <= "z" } == true
    }
}

private extension Character {
    var isASCIIDigitCharacter: Bool { isASCII && isNumber }
}
