import DiskFormats
import DiskImage
import FileSystemBtrfs
import FileSystems
import PartitionTable

/// The other devices of a multi-device filesystem (`--device`, request key `devices`): each file
/// opened as a disk (any container format), and the btrfs in it found as the whole file or in its
/// partitions. Opened once per `Disk`.
struct MemberDevices: Sendable {
    /// Each given file: its path and bytes.
    let files: [(path: String, source: any ByteSource)]
    /// Every file they read (qcow2 backing files too): no output may replace one of them.
    let inputFiles: [String]

    init(paths: [String], options: DiskImageOptions) throws {
        var files: [(path: String, source: any ByteSource)] = []
        var inputs: [String] = []
        for path in paths {
            do {
                let (source, read) = try openDiskImageFiles(path: path, options: options)
                files.append((path, source))
                inputs += read
            } catch {
                throw FWError(error).within(disk: path)
            }
        }
        self.files = files
        inputFiles = inputs
    }

    /// The btrfs filesystems of the given files: a whole file, else each partition of its table
    /// whose first bytes are btrfs. A file with neither is an error naming it (a device given
    /// for nothing is a mistake the user wants to hear about).
    func btrfs() throws -> [BtrfsDevice] {
        var result: [BtrfsDevice] = []
        for (path, source) in files {
            if try FileSystemFormat.kind(of: source) == .btrfs {
                result.append(BtrfsDevice(source: source, name: path))
                continue
            }
            let found = try Self.btrfsPartitions(of: source, table: try PartitionTable.read(from: source), path: path, given: true)
            guard !found.isEmpty else {
                throw FWError(.notFound, "--device: neither the file nor a partition of it holds btrfs", disk: path)
            }
            result += found
        }
        return result
    }

    /// The partitions of `source` (its partition table) that hold btrfs.
    /// `given`: the disk was given with `--device` (its partitions are reported when they are
    /// not members); false for the disk being read itself.
    static func btrfsPartitions(of source: any ByteSource, table: PartitionTable, path: String,
                                excluding start: UInt64? = nil, given: Bool) throws -> [BtrfsDevice] {
        guard table.kind != .none, table.kind != .ubi else { return [] }
        var result: [BtrfsDevice] = []
        for p in table.partitions where p.withinImage && p.size > 0 && p.start != start && !p.isExtended {
            let place = FWError.Place(disk: path, partition: "partition \(p.index)")
            let slice = try source.slice(offset: p.start, length: p.size, place: place)
            if try FileSystemFormat.kind(of: slice) == .btrfs {
                result.append(BtrfsDevice(source: slice, name: place.description, isGiven: given))
            }
        }
        return result
    }
}

/// What the btrfs readers opened on one `Disk` made of the devices they were offered: the
/// names of the members they read and the ones they passed over, with the reason.
struct DeviceUse: Sendable {
    var members: Set<String> = []
    var ignored: [(name: String, reason: String)] = []
}

extension Disk {
    /// Opens the filesystem in `slice` (`FileSystemFormat.open`, named `name`), a btrfs with the
    /// devices it may span, and notes which of them it took (`deviceWarnings()`).
    func openReader(_ slice: any ByteSource, name: String, replayJournal: Bool,
                    journalProgress: JournalReplayProgress?) throws -> any FileSystemReader {
        let reader = try FileSystemFormat.open(slice, name: name, replayJournal: replayJournal, journalProgress: journalProgress,
                                               btrfsDevices: try btrfsDevices(for: slice))
        if let btrfs = reader as? BtrfsReader {
            deviceUse.withLock { use in
                use.members.formUnion(btrfs.devices.map(\.name))
                use.ignored += btrfs.ignoredDevices
            }
        }
        return reader
    }

    /// A warning for each `--device` file that no btrfs read so far took as a member (none of
    /// the filesystems read is a btrfs it belongs to), with the reasons the readers gave.
    func deviceWarnings() -> [RunWarning] {
        guard let given = memberDevices?.files.map(\.path) else { return [] }
        let use = deviceUse.withLock { $0 }
        return given.compactMap { path in
            // The file itself, or one of its partitions ("member.img partition 2").
            func isPart(_ name: String) -> Bool { name == path || name.hasPrefix(path + " ") }
            guard !use.members.contains(where: isPart) else { return nil }
            var reasons: [String] = []
            for (name, reason) in use.ignored where isPart(name) {
                let text = name == path ? reason : "\(name.dropFirst(path.count + 1)): \(reason)"
                if !reasons.contains(text) { reasons.append(text) }
            }
            return RunWarning(code: .device, place: "--device \(path)",
                              message: "not a member of any btrfs this run read" + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: "; ")))"))
        }
    }

    /// The devices the btrfs in `slice` (a partition of this disk) may span: the other btrfs
    /// partitions of this disk, then the btrfs of every `--device` file; none when `slice`
    /// holds no btrfs. The reader keeps the members of its own filesystem (fsid, device id) and
    /// lists the rest as ignored.
    func btrfsDevices(for slice: any ByteSource) throws -> [BtrfsDevice] {
        guard try FileSystemFormat.detect(slice) == .btrfs else { return [] }
        return try MemberDevices.btrfsPartitions(of: source, table: try table(), path: path,
                                                   excluding: (slice as? SliceSource)?.offset, given: false)
            + (try memberDevices?.btrfs() ?? [])
    }
}
