/// Resolves device specs (fstab, mount units, kernel `root=`) against the disk's partitions,
/// treating the disk as the device the firmware booted from.
struct DeviceResolver {
    let partitions: [PlanPartition]
    let rootPartition: Int?

    enum Outcome: Equatable {
        case partition(Int, note: String?)
        case notFound(String)
        /// Not a partition at all (a path, tmpfs, zram...).
        case notAPartition
    }

    func resolve(_ spec: DeviceSpec) -> Outcome {
        func unique(_ matches: [PlanPartition], _ what: String) -> Outcome {
            guard let first = matches.first else { return .notFound("no partition has \(what)") }
            if matches.count > 1 {
                let list = matches.map(\.displayName).joined(separator: ", ")
                return .partition(first.index, note: "\(what) matches \(list); using the first, \(first.displayName), as the kernel's first-found device would be")
            }
            return .partition(first.index, note: nil)
        }
        switch spec {
        case .uuid(let u):
            return unique(partitions.filter { $0.fsUUID?.lowercased() == u.lowercased() }, "filesystem UUID \(u)")
        case .label(let l):
            return unique(partitions.filter { $0.label == l }, "label \(l)")
        case .partUUID(let u):
            return unique(partitions.filter { $0.partUUID?.lowercased() == u.lowercased() }, "PARTUUID \(u)")
        case .partLabel(let l):
            return unique(partitions.filter { $0.name == l }, "PARTLABEL \(l)")
        case .devicePath(let path):
            if path.hasPrefix("/dev/zram") || path.hasPrefix("/dev/ram") || path.hasPrefix("/dev/loop") { return .notAPartition }
            guard let n = spec.partitionNumber else { return .notFound("\(path) does not name a partition of this disk") }
            return unique(partitions.filter { $0.index == n }, "partition number \(n) (\(path))")
        case .root:
            if let r = rootPartition { return .partition(r, note: nil) }
            return .notFound("no root partition chosen")
        case .other:
            return .notAPartition
        }
    }
}

/// Filesystem types that are not backed by a partition and are empty (or generated) at boot.
enum VirtualFileSystems {
    static let volatile: Set<String> = ["tmpfs", "ramfs", "zram", "devtmpfs"]
    static let kernel: Set<String> = ["proc", "sysfs", "devpts", "cgroup", "cgroup2", "debugfs", "securityfs", "configfs",
                                      "mqueue", "hugetlbfs", "fusectl", "tracefs", "efivarfs", "bpf", "pstore", "autofs",
                                      "binfmt_misc", "rpc_pipefs", "nfsd", "swap"]

    /// The skip reason for a virtual type, nil for a real filesystem.
    static func skipReason(type: String, what: String) -> String? {
        if what.hasPrefix("/dev/zram") { return "volatile zram" }
        if volatile.contains(type) { return "volatile \(type)" }
        if kernel.contains(type) { return "virtual \(type)" }
        return nil
    }
}
