import DiskImage
import FileSystemBtrfs
import FileSystems

/// Chooses the root filesystem: `--root`, bootloader state on the disk (GRUB grubenv, U-Boot
/// environments, cmdline.txt / uEnv files), the Discoverable Partitions Specification, or the
/// only Linux root on the disk.
struct RootSelector {
    let disk: any PlanningDisk
    var warnings: [String] = []
    /// Bootloader facts seen, for the report (e.g. "grubenv ORDER=A B, A_OK=1").
    var evidence: [String] = []

    init(disk: any PlanningDisk) {
        self.disk = disk
    }

    /// Partitions whose filesystem looks like a Linux root: `etc` plus `usr`, `bin` or `sbin`;
    /// or a root the init builds the real root from: a balenaOS root partition (a balena-engine
    /// data-root at /balena with /current or /sbin/init leading into the hostapp) or an OSTree
    /// physical root (/ostree/deploy).
    func isLinuxRoot(_ index: Int) -> Bool {
        // A probe: a path that cannot be read answers no, as a missing one.
        guard let fs = disk.openedFileSystem(index) else { return false }
        if Self.looksLikeRoot(fs) { return true }
        // btrfs: the subvolume the kernel would mount as "/" (rootflags=, a root subvolume name).
        if let btrfs = fs as? BtrfsReader, BtrfsMounts.bootedRoot(disk: disk, partition: index, reader: btrfs) != nil { return true }
        return false
    }

    /// Whether a filesystem (or a btrfs subvolume) looks like a Linux root (see `isLinuxRoot`).
    static func looksLikeRoot(_ fs: any FileSystemReader) -> Bool {
        func isDirectory(_ path: String) -> Bool { fs.probeMetadata(path)?.type == .directory }
        func exists(_ path: String) -> Bool { fs.probe(path) != nil }
        if isDirectory("/balena"), exists("/current") || exists("/sbin/init") { return true }
        if isDirectory("/ostree/deploy") { return true }
        guard isDirectory("/etc") else { return false }
        for dir in ["/usr", "/bin", "/sbin"] {
            if let inode = fs.probe(dir), inode != 0 { return true }
        }
        return false
    }

    mutating func choose(options: PlanOptions) throws -> RootChoice {
        let candidates = disk.partitions.filter { isLinuxRoot($0.index) }
        func choice(_ index: Int, _ reason: String) -> RootChoice {
            let fs = disk.partitions.first { $0.index == index }?.fsType ?? "unknown"
            return RootChoice(partition: index, filesystem: fs, reason: reason)
        }

        if let wanted = options.root {
            let match = disk.partitions.first { String($0.index) == wanted }
                ?? disk.partitions.first { $0.name == wanted }
                ?? disk.partitions.first { $0.label == wanted }
            guard let p = match else {
                throw FWError(.invalidArgument, "--root \(wanted): no partition has that number, name or label")
            }
            if !isLinuxRoot(p.index) {
                warnings.append("--root \(wanted): \(p.displayName) does not look like a Linux root (no /etc with /usr, /bin or /sbin)")
            }
            return choice(p.index, "--root \(wanted)")
        }
        guard !candidates.isEmpty else { throw noRootError() }

        if let slot = try bootloaderChoice(candidates: candidates) { return choice(slot.0, slot.1) }

        if let dps = discoverableRoot(candidates: candidates) { return choice(dps.0, dps.1) }

        if candidates.count == 1 {
            return choice(candidates[0].index, "the only partition holding a Linux root")
        }
        let names = candidates.map(\.displayName).joined(separator: ", ")
        warnings.append("several Linux roots (\(names)) and no bootloader state chose one; using the first (use --root to pick another)")
        return choice(candidates[0].index, "first of several Linux roots (\(names)); no bootloader state found")
    }

    /// No partition holds a root: the error says what each partition holds instead (a
    /// filesystem without a root, one fwassemble does not read, one past the end of the image).
    func noRootError() -> FWError {
        let holds = disk.partitions.map { "\($0.displayName) \(holding($0))" }
        let what = holds.isEmpty ? "the disk has no partitions" : holds.joined(separator: "; ")
        return FWError(.notFound, "no partition holds a Linux root filesystem fwassemble reads (an /etc directory with /usr, /bin or /sbin): \(what)")
    }

    /// What a partition that is not a Linux root holds: "holds vfat with no Linux root in it",
    /// "holds xfs, which fwassemble does not read", "reaches past the end of the image (...)".
    private func holding(_ p: PlanPartition) -> String {
        if let why = disk.unreadableReason(partition: p.index) { return why }
        guard let type = p.fsType else { return "holds no filesystem libblkid recognises" }
        do {
            guard try disk.fileSystem(partition: p.index) != nil else { return "holds \(type), which fwassemble does not read" }
        } catch {
            return "holds \(type) that cannot be read: \(FWError(error).message)"
        }
        return "holds \(type) with no Linux root in it"
    }

    // MARK: Bootloader state

    /// Files on boot partitions that record which root boots.
    static let bootFiles = ["/EFI/BOOT/grubenv", "/boot/grub/grubenv", "/grub/grubenv", "/grubenv", "/EFI/BOOT/grub/grubenv",
                            "/cmdline.txt", "/resinOS_uEnv.txt", "/bootenv", "/uEnv.txt", "/uboot.env", "/boot.env"]

    private mutating func bootloaderChoice(candidates: [PlanPartition]) throws -> (Int, String)? {
        var grub: [String: String]?
        var grubFile = ""
        var cmdline: String?
        var textEnv: [String: String] = [:]
        var textEnvFile = ""
        var uboot: [String: String]?
        var ubootWhere = ""

        for p in disk.partitions {
            if candidates.contains(where: { $0.index == p.index }) { continue }
            if p.fsType == nil, p.size > 0 {
                // A raw partition may hold a U-Boot environment (HAOS hassos-bootstate).
                do {
                    if let found = UBootEnvironment.find(in: try disk.rawBytes(partition: p.index, count: 0x80000)) {
                        uboot = found.variables
                        ubootWhere = "U-Boot environment in \(p.displayName)"
                    }
                } catch {
                    warnings.append("\(p.displayName): unreadable (\(FWError(error).message)); no U-Boot environment looked for in it")
                }
                continue
            }
            guard let fs = disk.openedFileSystem(p.index) else { continue }
            for path in Self.bootFiles {
                let label = "\(path) on \(p.displayName)"
                let bytes: [UInt8]
                do {
                    guard let inode = try fs.lookup(path) else { continue }
                    bytes = try fs.readSmallFile(inode, limit: 1 << 20)
                } catch {
                    // The bootloader would not read it either; say so rather than choose silently.
                    warnings.append("\(label): unreadable (\(FWError(error).message)); not used for the root choice")
                    continue
                }
                if path.hasSuffix("grubenv"), grub == nil, let env = GrubEnvironment.parse(bytes) {
                    grub = env; grubFile = label
                } else if path == "/cmdline.txt", cmdline == nil {
                    cmdline = String(decoding: bytes, as: UTF8.self)
                } else if path.hasSuffix(".env"), uboot == nil, let found = UBootEnvironment.find(in: bytes) {
                    uboot = found.variables; ubootWhere = label
                } else if ["/resinOS_uEnv.txt", "/bootenv", "/uEnv.txt"].contains(path) {
                    textEnv.merge(UBootEnvironment.parseText(bytes)) { a, _ in a }
                    textEnvFile = label
                }
            }
        }

        // HAOS: A/B slots named by RAUC.
        if let env = grub, env["ORDER"] != nil || env["A_OK"] != nil {
            let order = (env["ORDER"] ?? "A B").split(separator: " ").map(String.init)
            for slot in order {
                let ok = env["\(slot)_OK"] == "1"
                let tries = Int(env["\(slot)_TRY"] ?? "0") ?? 0
                let facts = "\(grubFile): ORDER=\(order.joined(separator: " ")), \(slot)_OK=\(env["\(slot)_OK"] ?? "unset"), \(slot)_TRY=\(tries)"
                guard ok, tries < 3 else { evidence.append(facts + " (not bootable)"); continue }
                if let p = haosSlot(slot, candidates: candidates) { return (p, facts) }
                warnings.append("\(facts): slot \(slot) has no valid root filesystem; trying the next slot")
            }
        }
        if let env = uboot, let orderText = env["BOOT_ORDER"] {
            for slot in orderText.split(separator: " ").map(String.init) {
                let left = Int(env["BOOT_\(slot)_LEFT"] ?? "0") ?? 0
                let facts = "\(ubootWhere): BOOT_ORDER=\(orderText), BOOT_\(slot)_LEFT=\(left)"
                guard left > 0 else { evidence.append(facts + " (no tries left)"); continue }
                if let p = haosSlot(slot, candidates: candidates) { return (p, facts) }
                warnings.append("\(facts): slot \(slot) has no valid root filesystem; trying the next slot")
            }
        }
        // Mender and balena record a partition number.
        for (env, source) in [(uboot ?? [:], ubootWhere), (grub ?? [:], grubFile), (textEnv, textEnvFile)] {
            for key in ["mender_boot_part", "resin_root_part"] {
                guard let value = env[key] else { continue }
                let facts = "\(source): \(key)=\(value)"
                if let p = slotByValue(value, candidates: candidates) { return (p, facts) }
                warnings.append("\(facts) does not name a partition holding a Linux root; ignored")
            }
        }
        if let cmd = cmdline {
            if let slot = KernelCommandLine.value("rauc.slot", in: cmd), let p = haosSlot(slot, candidates: candidates) {
                return (p, "cmdline.txt rauc.slot=\(slot)")
            }
            if let root = KernelCommandLine.value("root", in: cmd) {
                let resolver = DeviceResolver(partitions: disk.partitions, rootPartition: nil)
                if case .partition(let p, _) = resolver.resolve(DeviceSpec(parsing: root)), candidates.contains(where: { $0.index == p }) {
                    return (p, "cmdline.txt root=\(root)")
                }
                warnings.append("cmdline.txt root=\(root) does not name a partition holding a Linux root; ignored")
            }
        }
        return nil
    }

    /// HAOS slot letter -> partition: by GPT name `hassos-system0/1`, else the first/second root
    /// slot candidate in partition order (MBR boards have no names).
    private func haosSlot(_ slot: String, candidates: [PlanPartition]) -> Int? {
        let number: Int
        switch slot.uppercased() {
        case "A": number = 0
        case "B": number = 1
        default: return nil
        }
        if let named = disk.partitions.first(where: { $0.name == "hassos-system\(number)" }) {
            return candidates.contains(where: { $0.index == named.index }) ? named.index : nil
        }
        // Without names: the slots are the partitions of the same size holding (or meant to hold)
        // a root; slot A is the first of them.
        let slots = slotPartitions(candidates: candidates)
        guard number < slots.count else { return nil }
        let index = slots[number]
        return candidates.contains(where: { $0.index == index }) ? index : nil
    }

    /// A/B slot partitions when the table has no names: the first candidate and the partitions of
    /// the same size after it (an empty slot B still takes its place).
    private func slotPartitions(candidates: [PlanPartition]) -> [Int] {
        guard let first = candidates.first else { return [] }
        return disk.partitions.filter { $0.size == first.size && $0.index >= first.index && ($0.fsType == nil || $0.fsType == first.fsType || candidates.contains($0)) }
            .filter { p in !(p.fsType == nil && p.size == 0) }
            .map(\.index)
    }

    /// `mender_boot_part=3` / `resin_root_part=2` (hex for balena's U-Boot) / `A|B`.
    private func slotByValue(_ value: String, candidates: [PlanPartition]) -> Int? {
        if value == "A" || value == "B" {
            let slots = candidates.map(\.index)
            let i = value == "A" ? 0 : 1
            return i < slots.count ? slots[i] : nil
        }
        let n = Int(value) ?? Int(value, radix: 16)
        guard let n, candidates.contains(where: { $0.index == n }) else { return nil }
        return n
    }

    // MARK: Discoverable Partitions Specification

    static let rootTypeGUIDs: [String: String] = [
        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709": "x86-64",
        "44479540-f297-41b2-9af7-d131d5f0458a": "x86",
        "b921b045-1df0-41c3-af44-4c6f280d3fae": "arm64",
        "69dad710-2ce4-4e3c-b16c-21a1d49abed3": "arm",
        "72ec70a6-cf74-40e6-bd49-4bda08e8f224": "riscv64",
        "993d8d3d-f80e-4225-855a-9daf8ed7ea97": "ia64",
    ]

    private func discoverableRoot(candidates: [PlanPartition]) -> (Int, String)? {
        for p in candidates {
            if let t = p.typeID?.lowercased(), let arch = Self.rootTypeGUIDs[t] {
                return (p.index, "GPT type GUID is the Discoverable Partitions root for \(arch)")
            }
        }
        return nil
    }
}
