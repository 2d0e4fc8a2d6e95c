import DiskImage
import FileSystemBtrfs
import FileSystems

/// btrfs in the mount plan: `subvol=` / `subvolid=` choose the subvolume a mount shows (fstab,
/// mount units, the kernel's `rootflags=`); without them a mount shows the default subvolume
/// (`btrfs subvolume set-default`), as the kernel mounts it.
public enum BtrfsMounts {
    /// The subvolume that mount options select: `subvolid=N` (0 means the default), else
    /// `subvol=PATH` (from the top level), else the default. Both given: they must name the same
    /// subvolume (checked by `view`, as the kernel refuses a mismatch).
    public static func subvolumes(options: String) throws -> (id: UInt64?, path: String?) {
        var id: UInt64?
        var path: String?
        for option in options.split(separator: ",") {
            if option.hasPrefix("subvolid=") {
                guard let n = UInt64(option.dropFirst("subvolid=".count)) else {
                    throw FWError(.invalidArgument, "btrfs option \(option): not a subvolume id")
                }
                id = n == 0 ? nil : n
            } else if option.hasPrefix("subvol=") {
                path = String(option.dropFirst("subvol=".count))
            }
        }
        return (id, path)
    }

    /// Whether `options` name a subvolume.
    public static func selectsSubvolume(_ options: String) -> Bool {
        options.split(separator: ",").contains { $0.hasPrefix("subvol=") || $0.hasPrefix("subvolid=") }
    }

    /// `reader` as a mount with `options` shows it: a btrfs filesystem at the subvolume the
    /// options select; any other filesystem as it is.
    public static func view(_ reader: any FileSystemReader, options: String) throws -> any FileSystemReader {
        guard let btrfs = reader as? BtrfsReader else { return reader }
        let (id, path) = try subvolumes(options: options)
        switch (id, path) {
        case (nil, nil):
            return btrfs.rootSubvolumeID == (try btrfs.defaultSubvolumeID()) ? btrfs : try btrfs.view(.default)
        case (let id?, nil):
            return try btrfs.view(.id(id))
        case (nil, let path?):
            return try btrfs.view(.path(path))
        case (let id?, let path?):
            let byPath = try btrfs.view(.path(path))
            guard byPath.rootSubvolumeID == id else {
                throw FWError(.invalidArgument, "btrfs subvol=\(path) is subvolume \(byPath.rootSubvolumeID), not subvolid=\(id) (the kernel refuses the mount)")
            }
            return byPath
        }
    }

    /// The booted root of a btrfs root partition: the subvolume, the options of the "/" mount
    /// and why.
    struct BootedSubvolume {
        var view: BtrfsReader
        var options: String
        var reason: String
        var warnings: [String] = []
    }

    /// Well-known names of a root subvolume directly under the top level, tried (in this order)
    /// when neither a `rootflags=` nor the default subvolume gives a Linux root.
    static let rootSubvolumeNames = ["root", "@", "@root", "@rootfs", "rootfs"]

    /// The subvolume the kernel mounts as "/" from a btrfs partition: the `rootflags=subvol=`
    /// (or `subvolid=`) of the first Boot Loader Specification entry on the disk whose `root=`
    /// names this partition (or gives none); else the default subvolume; else, when that is no
    /// Linux root, a well-known root subvolume (Fedora's `root`, Ubuntu's `@`), with a warning.
    static func bootedRoot(disk: any PlanningDisk, partition: Int, reader: BtrfsReader) -> BootedSubvolume? {
        var warnings: [String] = []
        if let (entry, flags) = rootflags(disk: disk, partition: partition, warnings: &warnings) {
            do {
                if let view = try view(reader, options: flags) as? BtrfsReader {
                    let path: String
                    do {
                        path = try view.rootSubvolumePath ?? "deleted"
                    } catch {
                        path = "path unreadable: \(FWError(error).message)"   // the reason says so; the subvolume itself opened
                    }
                    let options = flags.split(separator: ",").filter { $0.hasPrefix("subvol") }.joined(separator: ",")
                    return BootedSubvolume(view: view, options: options,
                                      reason: "btrfs subvolume \(view.rootSubvolumeID) (\(path)) from \(entry) rootflags=\(flags)", warnings: warnings)
                }
            } catch {
                warnings.append("\(entry): rootflags=\(flags): \(FWError(error).message); ignored")
            }
        }
        do {
            let defaultView = try reader.view(.default)
            if RootSelector.looksLikeRoot(defaultView) {
                return BootedSubvolume(view: defaultView, options: "", reason: try describeDefault(defaultView), warnings: warnings)
            }
            let topLevel = Set(try reader.subvolumes().map(\.path))
            for name in rootSubvolumeNames where topLevel.contains(name) {
                let view = try reader.view(.path(name))
                guard RootSelector.looksLikeRoot(view) else { continue }
                warnings.append("btrfs partition \(partition): the default subvolume holds no Linux root and no boot entry gives rootflags=subvol=; using subvolume \(name) (\(view.rootSubvolumeID))")
                return BootedSubvolume(view: view, options: "subvol=\(name)", reason: "btrfs subvolume \(view.rootSubvolumeID) (\(name)), the well-known root subvolume name", warnings: warnings)
            }
        } catch {
            warnings.append("btrfs partition \(partition): \(FWError(error).message)")
        }
        return nil
    }

    /// The `rootflags=` holding a subvolume option from the boot entries of every partition
    /// (`/loader/entries` on an ESP or /boot partition, `/boot/loader/entries` on a root), in boot
    /// order: its file and value.
    static func rootflags(disk: any PlanningDisk, partition: Int, warnings: inout [String]) -> (String, String)? {
        let resolver = DeviceResolver(partitions: disk.partitions, rootPartition: partition)
        for p in disk.partitions {
            guard let fs = disk.openedFileSystem(p.index) else { continue }
            for directory in ["/loader/entries", "/boot/loader/entries"] {
                for entry in BootLoaderEntries.read(in: fs, directory: directory, warnings: &warnings) {
                    guard let flags = KernelCommandLine.value("rootflags", in: entry.options), selectsSubvolume(flags) else { continue }
                    if let root = KernelCommandLine.value("root", in: entry.options),
                       case .partition(let index, _) = resolver.resolve(DeviceSpec(parsing: root)), index != partition {
                        continue
                    }
                    return ("partition \(p.index) \(entry.file)", flags)
                }
            }
        }
        return nil
    }

    /// "btrfs default subvolume 260 (@/.snapshots/2/snapshot)", and for a snapper snapshot
    /// what its `info.xml` says (number, type, date, description) and whether it is read-only.
    static func describeDefault(_ view: BtrfsReader) throws -> String {
        let path = try view.rootSubvolumePath ?? "<deleted>"
        var text = "btrfs default subvolume \(view.rootSubvolumeID) (\(path.isEmpty ? "top level" : path))"
        if let snapshot = SnapperSnapshot(subvolumePath: path) {
            text += ", snapper snapshot \(snapshot.number)"
            if let info = snapshot.info(in: view) { text += " (\(info))" }
            let readOnly = try view.subvolumes().first { $0.id == view.rootSubvolumeID }?.isReadOnly ?? false
            if readOnly { text += ", read-only" }
        }
        return text
    }
}

/// A snapper snapshot subvolume: `<prefix>.snapshots/<number>/snapshot` (openSUSE MicroOS,
/// SLE Micro and openSUSE with snapshot booting, where the booted snapshot is the default
/// subvolume); snapper's description of it is `<prefix>.snapshots/<number>/info.xml`.
struct SnapperSnapshot {
    var prefix: String
    var number: Int

    init?(subvolumePath path: String) {
        let parts = path.split(separator: "/").map(String.init)
        guard parts.count >= 3, parts[parts.count - 1] == "snapshot", parts[parts.count - 3] == ".snapshots",
              let n = Int(parts[parts.count - 2]) else { return nil }
        prefix = parts.dropLast(3).map { $0 + "/" }.joined()
        number = n
    }

    var infoPath: String { "\(prefix).snapshots/\(number)/info.xml" }

    /// "/@/.snapshots/2/info.xml: type single, date 2024-01-01 00:00:00, description ...", nil
    /// when there is none; one that cannot be read is said so (it only adds to the plan's reason).
    func info(in view: BtrfsReader) -> String? {
        let bytes: [UInt8]
        do {
            let top = try view.view(.id(5))
            guard let inode = try top.lookup(Array(infoPath.utf8), followLast: true) else { return nil }
            bytes = try top.readSmallFile(inode, limit: 1 << 16)
        } catch {
            return "/\(infoPath): cannot be read (\(FWError(error).message))"
        }
        let xml = String(decoding: bytes, as: UTF8.self)
        func tag(_ name: String) -> String? {
            guard let open = xml.firstRange(of: "<\(name)>"), let close = xml[open.upperBound...].firstRange(of: "</\(name)>") else { return nil }
            return String(xml[open.upperBound..<close.lowerBound])
        }
        let fields = [("type", tag("type")), ("date", tag("date")), ("description", tag("description"))]
            .compactMap { name, value in value.map { "\(name) \($0)" } }
        return "/\(infoPath): " + (fields.isEmpty ? "present" : fields.joined(separator: ", "))
    }
}
