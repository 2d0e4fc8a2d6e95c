import Codecs
import DiskImage
import Synchronization

/// Opens a disk image of any supported container format, detected by its content (magic
/// numbers), never by its file name: raw, qcow2, VMDK (sparse, streamOptimized, descriptor with
/// flat/sparse extents), VHDX, VHD, VDI, and any of them inside xz, gzip, zstd, zip or tar/OVA.
///
/// The returned source reads the virtual disk; `diskImageFormat(of:)` names its format. Errors
/// are `FWError`s naming the file and the offset of the bad structure.
public func openDiskImage(path: String, options: DiskImageOptions = DiskImageOptions()) throws -> any ByteSource {
    try openDiskImageFiles(path: path, options: options).source
}

/// `openDiskImage`, plus every file the virtual disk reads: the image itself, its qcow2 backing
/// files and VMDK extents (the paths as opened), so that an output can refuse to overwrite any
/// of them.
public func openDiskImageFiles(path: String, options: DiskImageOptions = DiskImageOptions()) throws -> (source: any ByteSource, files: [String]) {
    let opener = ImageOpener(options: options)
    let source = try opener.open(path: path, backingDepth: 0, chain: [])
    return (source, opener.files.withLock { $0 })
}

/// The detection and nesting rules shared by the formats (backing files and extents open more
/// files through it).
struct ImageOpener {
    let options: DiskImageOptions
    /// Every file opened or resolved so far (shared by the openers of backing files).
    let files: SharedFileList

    init(options: DiskImageOptions, files: SharedFileList = SharedFileList([])) {
        self.options = options
        self.files = files
    }
    /// Backing chains deeper than this are refused (a loop through differently named files).
    static let maximumBackingDepth = 64
    /// Wrappers inside wrappers (a .qcow2 in a .zip in a .xz) deeper than this are refused.
    static let maximumWrapperDepth = 4

    func open(path: String, backingDepth: Int, chain: [String]) throws -> any ByteSource {
        let file = try FileSource(path: path)
        files.withLock { $0.append(path) }
        return try detect(file, directory: directoryOf(path), backingDepth: backingDepth,
                          chain: chain + [canonicalPath(path)], wrapperDepth: 0)
    }

    /// The container in `source`, or `source` itself when it is a raw disk.
    func detect(_ source: any ByteSource, directory: String, backingDepth: Int, chain: [String], wrapperDepth: Int) throws -> any ByteSource {
        let magic = DiskImageMagic.detect(try source.prefix(at: 0, count: 1024))
        func unwrap(_ inner: any ByteSource, _ wrapper: String) throws -> any ByteSource {
            guard wrapperDepth < Self.maximumWrapperDepth else {
                throw FWError(.limitExceeded, "compressed wrappers nested more than \(Self.maximumWrapperDepth) deep", disk: source.name)
            }
            let content = try detect(inner, directory: directory, backingDepth: backingDepth, chain: chain, wrapperDepth: wrapperDepth + 1)
            return WrappedSource(inner: content, wrapper: wrapper, keepAlive: [inner])
        }

        if magic == .qcow2 {
            return try Qcow2Image(source, directory: directory, opener: self, backingDepth: backingDepth, chain: chain)
        }
        if magic == .vmdkSparse {
            return try VMDKSparseExtent(source, name: source.name, isStandalone: true)
        }
        if magic == .vmdkDescriptor {
            return try VMDKDescriptor.open(source, directory: directory, opener: self)
        }
        if magic == .vhdx {
            return try VHDXImage(source)
        }
        if magic == .vdi {
            return try VDIImage(source)
        }
        if magic == .vhd {
            return try VHDImage(source)
        }
        if try DiskImageMagic.hasVHDFooter(source) {
            return try VHDImage(source)
        }
        if magic == .xz {
            // Several blocks: random access through the index; otherwise decompress once.
            if let indexed = try XZIndexedSource(source) {
                return try unwrap(indexed, "xz")
            }
            let file = try CompressedWrappers.spool(source, decoder: try XZDecoder(), wrapper: "xz", declaredSize: nil, options: options)
            return try unwrap(file, "xz")
        }
        if magic == .gzip {
            let file = try CompressedWrappers.spool(source, decoder: try GzipDecoder(), wrapper: "gzip", declaredSize: nil, options: options)
            return try unwrap(file, "gzip")
        }
        if magic == .zstd {
            let file = try CompressedWrappers.spool(source, decoder: try ZstdDecoder(), wrapper: "zstd", declaredSize: nil, options: options)
            return try unwrap(file, "zstd")
        }
        if magic == .zip {
            return try unwrap(try CompressedWrappers.openZip(source, options: options), "zip")
        }
        if magic == .tar {
            for entry in try CompressedWrappers.tarEntries(source) {
                let inner = try detect(entry.data, directory: directory, backingDepth: backingDepth, chain: chain, wrapperDepth: wrapperDepth + 1)
                if inner is any DiskContainerSource {
                    return WrappedSource(inner: inner, wrapper: "tar", keepAlive: [source])
                }
            }
            throw FWError(.unsupported, "tar archive (OVA) holds no disk image in a known container format", disk: source.name)
        }
        if magic == .bzip2 {
            throw FWError(.unsupported, "bzip2-compressed images are not supported yet; decompress with bunzip2 first", disk: source.name)
        }
        return source
    }

    /// Opens a file named inside an image (backing file, extent): relative names are resolved
    /// against the image's folder, then against `--backing-dir`.
    func resolve(_ reference: String, directory: String, what: String, disk: String, useBackingDir: Bool) throws -> String {
        var candidates: [String] = []
        if reference.hasPrefix("/") {
            candidates.append(reference)
        } else {
            candidates.append(directory == "." ? reference : "\(directory)/\(reference)")
        }
        if useBackingDir, let dir = options.backingDirectory {
            let base = reference.split(separator: "/").last.map(String.init) ?? reference
            candidates.append("\(dir)/\(reference.hasPrefix("/") ? base : reference)")
            candidates.append("\(dir)/\(base)")
        }
        // A missing candidate is the answer "not here"; one that exists but cannot be opened is
        // named in the error, so it does not read as missing.
        var unopenable: [String] = []
        for c in candidates {
            do {
                _ = try FileSource(path: c)
            } catch let e as FWError where e.code == .notFound {
                continue
            } catch {
                unopenable.append("\(c): \(FWError(error).message)")
                continue
            }
            files.withLock { $0.append(c) }
            return c
        }
        let why = unopenable.isEmpty ? "" : "; " + unopenable.joined(separator: "; ")
        throw FWError(.notFound, "\(what) \"\(reference)\" not found (looked for \(candidates.joined(separator: ", "))\(why)\(useBackingDir && options.backingDirectory == nil ? "; --backing-dir names another folder" : ""))", disk: disk)
    }
}

/// The files an `ImageOpener` and the openers it makes for backing files have opened.
final class SharedFileList: Sendable {
    private let paths: Mutex<[String]>

    init(_ paths: [String]) { self.paths = Mutex(paths) }

    func withLock<T>(_ body: (inout [String]) -> T) -> T { paths.withLock { body(&$0) } }
}

/// A stream that may be gzip- or zstd-compressed (an OCI layer blob), as random-access bytes:
/// decompressed once into an unlinked temporary file when its magic says gzip (1f 8b) or zstd
/// (28 b5 2f fd), else `source` itself.
public func decompressedStream(_ source: any ByteSource, options: DiskImageOptions = DiskImageOptions()) throws -> any ByteSource {
    guard source.size >= 4 else { return source }
    let magic = DiskImageMagic.detect(try source.bytes(at: 0, count: 4))
    if magic == .gzip {
        return try CompressedWrappers.spool(source, decoder: try GzipDecoder(), wrapper: "gzip", declaredSize: nil, options: options)
    }
    if magic == .zstd {
        return try CompressedWrappers.spool(source, decoder: try ZstdDecoder(), wrapper: "zstd", declaredSize: nil, options: options)
    }
    return source
}
