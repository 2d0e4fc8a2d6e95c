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

    /// The slot conventions in order (`SlotContext.conventions`): the first with an answer
    /// chooses; its warnings and those of the conventions before it are kept, and every later
    /// convention that points at another partition adds a warning (two conventions disagree).
    private mutating func bootloaderChoice(candidates: [PlanPartition]) throws -> (Int, String)? {
        let context = SlotContext(disk: disk, candidates: candidates,
                                  state: BootState.collect(disk: disk, candidates: candidates, warnings: &warnings))
        var winner: SlotDecision?
        for decide in SlotContext.conventions {
            var found = SlotFindings()
            let decision = decide(context, &found)
            guard let chosen = winner else {
                warnings += found.warnings
                evidence += found.evidence
                winner = decision
                continue
            }
            if let other = decision, other.partition != chosen.partition {
                warnings.append("\(other.convention) points at \(context.name(other.partition)) (\(other.reason)), but \(chosen.convention) chose \(context.name(chosen.partition)); the \(chosen.convention) choice is kept")
            }
        }
        return winner.map { ($0.partition, $0.reason) }
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
