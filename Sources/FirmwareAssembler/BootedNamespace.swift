import Assembly
import Foundation
import DiskImage
import FileSystemFAT
import FileSystems
import MountPlan

/// The booted device's namespace, built the one way every operation uses (assemble, docker,
/// the namespace walk): the plan's mounts applied in order to the namespace engine, each
/// partition opened once with the FAT options it is mounted with.
struct BootedNamespace {
    let plan: Plan
    let partitions: PartitionFileSystems
    let namespace: NamespaceFileSystem
    /// vfat mount options that cannot be parsed (the partition is read with the defaults): the
    /// mount point and what is wrong.
    let warnings: [(place: String, message: String)]

    /// Plans (with `options`) and applies the plan.
    init(disk: Disk, options: PlanOptions, journalProgress: JournalReplayProgress? = nil) throws {
        let partitions = try PartitionFileSystems(disk: disk, replayJournal: options.replayJournal, journalProgress: journalProgress)
        try self.init(disk: disk, plan: try disk.plan(using: partitions, options: options), partitions: partitions)
    }

    /// Applies `plan` (from `Disk.plan`, possibly edited).
    init(disk: Disk, plan: Plan, partitions: PartitionFileSystems) throws {
        self.plan = plan
        self.partitions = partitions
        // FAT partitions are read with the uid=/gid=/umask= options they are mounted with,
        // parsed once here; a bad option is a warning and the kernel's defaults are used.
        var fatOptions: [String: FATMountOptions] = [:]
        var warnings: [(place: String, message: String)] = []
        for m in plan.mounts where m.fstype == "vfat" {
            do {
                fatOptions[m.where] = try FATMountOptions.parse(m.options)
            } catch {
                warnings.append((m.where, "vfat options \(m.options.debugDescription): \(FWError(error).message); the defaults are used"))
            }
        }
        self.warnings = warnings
        do {
            namespace = try NamespaceFileSystem(plan: plan, name: "\(disk.path) booted namespace") { m in
                guard let number = m.partition else { return nil }
                if let offset = m.offset, offset != 0 {
                    return try partitions.fileSystem(partition: number, offset: offset).map { try BtrfsMounts.view($0, options: m.options) }
                }
                return try partitions.fileSystem(partition: number, fat: fatOptions[m.where]).map { try BtrfsMounts.view($0, options: m.options) }
            }
        } catch let e as FWError {
            throw e.within(disk: disk.path)
        }
    }

    /// What booting met that did not stop it, as every job reports it: the partition table's
    /// warnings (`table`), the plan's, and vfat mount options that could not be applied.
    func setupWarnings(table: [String]) -> [RunWarning] {
        table.map { RunWarning(code: .partitionTable, place: "partition table", message: $0) }
            + plan.warnings.map { RunWarning(code: .plan, place: nil, message: $0) }
            + warnings.map { RunWarning(code: .mountOptions, place: $0.place, message: $0.message) }
    }

    /// The namespace engine's problems so far (a bind source missing, an unreadable directory).
    var namespaceWarnings: [RunWarning] {
        namespace.problems.map { RunWarning(code: .namespace, place: $0.path, message: $0.message) }
    }

    /// The walk of the namespace in archive order (penguin's own directories left out).
    func walk() -> TreeWalk {
        namespace.bootedWalk()
    }

    /// Where a walked entry comes from, for per-partition counts: the mount's origin, or the
    /// name of the generated filesystem (`--rehost`'s edits).
    func origin(of entry: WalkEntry) -> String {
        entry.reader === namespace ? namespace.origin(of: entry.metadata.inode) : entry.reader.sourceName
    }

    /// The bind mounts of the plan as (target, source) pairs. A bind at "/" (an OSTree
    /// deployment) makes the root; it is no alias of a visible path.
    var binds: [(target: String, source: String)] {
        plan.mounts.compactMap { m in m.kind == .bind && m.where != "/" ? m.what.map { (m.where, $0) } : nil }
    }
}

/// Per-mount counts and progress of an assembly, one for both outputs (the archive and
/// `--format ext4`): each entry written is counted under its origin, and progress is reported at
/// most five times a second.
struct AssemblyTally {
    private let booted: BootedNamespace
    private let progress: (@Sendable (AssembleProgress) -> Void)?
    private let plannedBytes: UInt64
    private var origins: [String: AssembleReport.Origin] = [:]
    private var lastProgress = Date.distantPast
    private(set) var members = 0

    init(booted: BootedNamespace, progress: (@Sendable (AssembleProgress) -> Void)?, plannedBytes: UInt64) {
        self.booted = booted
        self.progress = progress
        self.plannedBytes = plannedBytes
    }

    /// Counts one entry written; `contentBytes` is the content written so far.
    mutating func count(_ entry: WalkEntry, contentBytes: UInt64) {
        members += 1
        let origin = booted.origin(of: entry)
        var o = origins[origin] ?? AssembleReport.Origin(origin: origin, entries: 0, bytes: 0)
        o.entries += 1
        if entry.hardlinkTarget == nil, entry.metadata.type == .regular { o.bytes += entry.metadata.size }
        origins[origin] = o
        if let progress, Date().timeIntervalSince(lastProgress) > 0.2 {
            lastProgress = Date()
            progress(AssembleProgress(entries: members, contentBytes: contentBytes, plannedBytes: plannedBytes,
                                      currentPath: entry.displayPath))
        }
    }

    /// The report's per-mount counts, by origin.
    var partitions: [AssembleReport.Origin] { origins.values.sorted { $0.origin < $1.origin } }
}
