// Package dimse is a DICOM network (DIMSE) client of a PACS, written from
// PS3.7 and PS3.8 in pure Go: it implements pacs.Source with C-FIND to
// query and C-GET or C-MOVE to retrieve.
//
// # Using it
//
//	c, err := dimse.Open(u, dimse.Options{}) // u: dicom://PACSAET@host:104?calling=CONCORD
//	series, err := c.FindSeries(ctx, pacs.Query{Modality: "CR", BodyPart: "CHEST"})
//	err = c.Retrieve(ctx, series[0], func(uid string, part10 []byte) error { ... })
//
// The URL names the PACS's AE title, host and port; calling= sets ours
// (default CONCORD). Retrieval uses C-GET, which needs nothing from the
// hospital's network. move=1&scp_port=N switches to C-MOVE: Open then
// listens on port N with a storage SCP, and the PACS must know our AE
// title at this host and port (its "move destination"). Any other URL
// parameter is refused.
//
// # What is supported
//
//   - Upper layer: A-ASSOCIATE-RQ/AC/RJ with presentation contexts,
//     maximum PDU length, implementation class UID and version, and
//     SCP/SCU role selection (C-GET's storage sub-operations); P-DATA-TF
//     with PDV fragmentation both ways, within the peer's maximum PDU
//     length; A-RELEASE; A-ABORT. Rejections and aborts are worded ("association
//     rejected by ORTHANC at 10.0.0.5:4242: called AE title not recognised").
//   - DIMSE-C: C-ECHO; study-root C-FIND at STUDY level (study date range,
//     modalities in study) then SERIES level in each study (modality,
//     body part, series description with * and ?); C-GET and C-MOVE at
//     SERIES level; C-STORE as the SCP of sub-operations. Statuses are
//     classified (pending, success, warning, cancel, failure) and worded.
//   - Storage: C-GET proposes DefaultStorageClasses (CR, DX, MG, CT, MR,
//     US, SC, NM, PET), each in one context per compressed transfer syntax
//     the imaging package decodes (JPEG baseline, extended, lossless;
//     JPEG-LS; JPEG 2000; RLE; deflate) plus one for the uncompressed
//     ones. One context per compressed syntax lets the PACS send each
//     instance as stored: pixel data arrives byte for byte, with no
//     transcoding the PACS may not be able to do. Received data sets are
//     wrapped in a Part 10 header (file meta information) and passed on
//     with their bytes untouched. An instance of a class outside
//     Options.StorageClasses cannot come over C-GET (the PACS reports it
//     as a failed sub-operation, and Retrieve says how many); the C-MOVE
//     storage SCP accepts every storage class.
//
// # Design choices
//
//   - One association per call: FindSeries, Retrieve and Echo each
//     associate, work and release, so a Client is safe for concurrent use
//     and holds nothing open between calls. C-MOVE retrievals take turns,
//     because the storage SCP delivers to the one retrieval waiting.
//   - The storage SCP accepts associations only from the PACS host's
//     addresses (and Options.MovePeers), with the PACS's AE title calling
//     ours. Other hosts are disconnected unanswered; other AE titles get
//     an A-ASSOCIATE-RJ naming the reason; both are logged without
//     identifiers. It serves at most 4 associations at once.
//   - Cancelling the context, or an error from store, aborts the
//     association (A-ABORT): the PACS stops its sub-operations, and
//     Retrieve returns the context's or store's error. We do not wait
//     for a C-CANCEL round trip a broken peer might never complete.
//   - A study date range is re-checked on the dates the PACS returns:
//     PACSes differ on whether an undated study matches an open range, and
//     a query must select the same series from any of them.
//   - Errors name the peer (AE title and address) and the reason, and
//     carry no patient data: no UIDs, names or values from data sets.
//     A peer's free text (error comments) is cut to 64 printable bytes.
//
// # Limits
//
// Every read is bounded: A-ASSOCIATE PDUs to 256 KiB, other PDUs to
// Options.MaxPDU (256 KiB by default, advertised to the peer), a command
// set to 64 KiB, one data set to Options.MaxInstanceBytes (1 GiB), one
// C-FIND to Options.MaxResults matches, sequences in identifiers to 16
// levels, and each wait for a PDU to Options.Timeout (60 s). Each
// received instance is held in memory once before store is called.
//
// # Not supported
//
// TLS (DICOM's secure transport profile), extended negotiation,
// asynchronous operations (one outstanding request at a time), user
// identity negotiation, PATIENT-root and IMAGE-level queries, explicit VR
// or big endian for queries (we propose implicit VR little endian, which
// every PACS must accept), and HTJ2K transfer syntaxes (not proposed).
package dimse
