import DiskFormats
import DiskImage
import FileSystems
import Foundation
import PartitionTable

/// The disks of a batch: the inputs the user named (disk images, folders, `@LIST` files) turned
/// into a list of image paths, each once.
public enum BatchInputs {
    /// Expands `inputs`, in order: a file is a disk whatever it holds (a damaged one is a failed
    /// disk, not a skipped one); a folder is searched recursively, in name order, for files that
    /// hold a disk image by content (`isDiskImage`); `@LIST` names a file with one input per line
    /// (blank lines and `#` comments ignored; relative paths are relative to the list's folder).
    /// Paths come back absolute; a file named twice (or through a symlink) appears once.
    /// Folders under `excluding` (the output folder) are not searched.
    /// Throws `.invalidArgument` for an input that does not exist or an unreadable list.
    public static func expand(_ inputs: [String], excluding: [String] = []) throws -> [String] {
        var result: [String] = []
        var seen = Set<String>()
        let excluded = Set(excluding.map { canonical(absolute($0)) })
        func add(_ path: String) {
            if seen.insert(canonical(path)).inserted { result.append(path) }
        }
        func walk(_ input: String, base: String, listDepth: Int) throws {
            if input.hasPrefix("@") {
                let list = absolute(String(input.dropFirst()), base: base)
                guard listDepth < 8 else { throw FWError(.invalidArgument, "@lists nested more than 8 deep", disk: list) }
                let text: String
                do {
                    text = try String(contentsOfFile: list, encoding: .utf8)
                } catch {
                    throw FWError(.invalidArgument, "cannot read the list of inputs", disk: list)
                }
                let folder = (list as NSString).deletingLastPathComponent
                for line in text.split(whereSeparator: \.isNewline) {
                    let entry = line.trimmingCharacters(in: .whitespaces)
                    if entry.isEmpty || entry.hasPrefix("#") { continue }
                    try walk(entry, base: folder, listDepth: listDepth + 1)
                }
                return
            }
            let path = absolute(input, base: base)
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
                throw FWError(.invalidArgument, "no such file or folder", disk: input)
            }
            if isFolder.boolValue {
                for file in try filesUnder(path, excluded: excluded) where isDiskImage(path: file) { add(file) }
                return
            }
            // A FIFO or character device would hang the hashing and the child: refused up front.
            var st = stat()
            guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG || st.st_mode & S_IFMT == S_IFBLK else {
                throw FWError(.invalidArgument, "not a regular file or block device", disk: input)
            }
            add(path)
        }
        for input in inputs { try walk(input, base: FileManager.default.currentDirectoryPath, listDepth: 0) }
        return result
    }

    /// Whether the file at `path` holds a disk image, judged by its content as `Disk(path:)`
    /// would open it: a container or wrapper (`sniffDiskImage`), a partition table, or a
    /// filesystem libblkid recognises at its start.
    public static func isDiskImage(path: String) -> Bool {
        guard let file = try? FileSource(path: path), file.size >= 512 else { return false }  // unreadable: not a disk
        switch sniffDiskImage(file) {
        case .container:
            return true
        case .unreadable:
            return false
        case .wrapped(_, let head):
            if let table = try? PartitionTable.read(from: head), !table.partitions.isEmpty { return true }  // no table: try below
            return hasFilesystemMagic(head)
        case .raw:
            if let table = try? PartitionTable.read(from: file), !table.partitions.isEmpty { return true }  // idem
            guard let prober = try? FilesystemProber(path: path) else { return false }  // unprobeable: not a disk
            return (try? prober.probe(offset: 0, size: file.size)).flatMap { $0 } != nil  // idem
        }
    }

    /// Filesystem superblock magics (`FileSystemKind.table`: ext2/3/4, squashfs, EROFS, F2FS,
    /// XFS, btrfs), for decoded heads libblkid cannot probe (it reads files).
    static func hasFilesystemMagic(_ head: MemorySource) -> Bool {
        FileSystemKind.superblockMagic(in: head.bytes) != nil
    }

    /// Regular files under `folder`, recursively, sorted by path; symlinks to files are followed,
    /// symlinked folders are not (no cycles).
    static func filesUnder(_ folder: String, excluded: Set<String>) throws -> [String] {
        var files: [String] = []
        var pending = [folder]
        while let dir = pending.popLast() {
            if excluded.contains(canonical(dir)) { continue }
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: dir)
            } catch {
                throw FWError(.invalidArgument, "cannot list the folder", disk: dir)
            }
            for name in names {
                let path = dir == "/" ? "/" + name : dir + "/" + name
                var st = stat()
                guard lstat(path, &st) == 0 else { continue }
                switch st.st_mode & S_IFMT {
                case S_IFDIR: pending.append(path)
                case S_IFREG: files.append(path)
                case S_IFLNK:
                    var target = stat()
                    if stat(path, &target) == 0, target.st_mode & S_IFMT == S_IFREG { files.append(path) }
                default: continue
                }
            }
        }
        return files.sorted()
    }

    /// `path` made absolute against `base` and normalised lexically ("." and ".." removed,
    /// symlinks kept: the record names the disk as the user named it).
    static func absolute(_ path: String, base: String = FileManager.default.currentDirectoryPath) -> String {
        let joined = path.hasPrefix("/") ? path : base + "/" + path
        var parts: [Substring] = []
        for c in joined.split(separator: "/") {
            if c == "." { continue }
            if c == ".." { _ = parts.popLast(); continue }
            parts.append(c)
        }
        return "/" + parts.joined(separator: "/")
    }

    static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
