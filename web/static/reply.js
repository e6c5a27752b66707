// Recording a spoken reply in the browser: record, listen, record again, send.
// The recording is put into the form's file field, so sending is the same form post as an upload.
(function () {
  "use strict";
  var form = document.getElementById("reply-form");
  if (!form) { return; }
  var box = form.querySelector(".recorder");
  var startBtn = document.getElementById("rec-start");
  var stopBtn = document.getElementById("rec-stop");
  var againBtn = document.getElementById("rec-again");
  var state = document.getElementById("rec-state");
  var preview = document.getElementById("rec-preview");
  var fileInput = document.getElementById("audio");
  var MAX_MS = 180000;
  var recorder = null;
  var chunks = [];
  var timer = null;
  var previewUrl = null;

  if (!window.MediaRecorder || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return; // upload only
  }
  box.hidden = false;

  function pickType() {
    var types = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm"];
    for (var i = 0; i < types.length; i++) {
      if (MediaRecorder.isTypeSupported(types[i])) { return types[i]; }
    }
    return "";
  }

  function clearRecording() {
    if (previewUrl) { URL.revokeObjectURL(previewUrl); previewUrl = null; }
    preview.removeAttribute("src");
    preview.hidden = true;
    fileInput.value = "";
    form.dataset.recorded = "";
  }

  function attach(blob) {
    var ext = blob.type.indexOf("ogg") >= 0 ? "ogg" : "webm";
    var file = new File([blob], "reply." + ext, { type: blob.type || "audio/webm" });
    var transfer = new DataTransfer();
    transfer.items.add(file);
    fileInput.files = transfer.files;
    previewUrl = URL.createObjectURL(blob);
    preview.src = previewUrl;
    preview.hidden = false;
    form.dataset.recorded = "1";
    state.textContent = "ضبط شد؛ بشنوید و بفرستید، یا دوباره ضبط کنید.";
  }

  function start() {
    clearRecording();
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      var type = pickType();
      recorder = type ? new MediaRecorder(stream, { mimeType: type }) : new MediaRecorder(stream);
      chunks = [];
      recorder.ondataavailable = function (e) { if (e.data && e.data.size) { chunks.push(e.data); } };
      recorder.onstop = function () {
        stream.getTracks().forEach(function (t) { t.stop(); });
        clearTimeout(timer);
        startBtn.classList.remove("recording");
        startBtn.disabled = true;
        stopBtn.disabled = true;
        againBtn.disabled = false;
        attach(new Blob(chunks, { type: recorder.mimeType || type || "audio/webm" }));
      };
      recorder.start(250);
      startBtn.classList.add("recording");
      startBtn.disabled = true;
      stopBtn.disabled = false;
      againBtn.disabled = true;
      state.textContent = "در حال ضبط…";
      timer = setTimeout(stop, MAX_MS);
    }).catch(function () {
      state.textContent = "دسترسی به میکروفون ممکن نشد؛ می‌توانید پرونده صوتی بارگذاری کنید.";
    });
  }

  function stop() {
    if (recorder && recorder.state !== "inactive") { recorder.stop(); }
  }

  startBtn.addEventListener("click", start);
  stopBtn.addEventListener("click", stop);
  againBtn.addEventListener("click", function () { startBtn.disabled = false; start(); });
  fileInput.addEventListener("change", function () {
    // A file chosen by hand replaces the recording (setting `files` from script fires no event).
    if (previewUrl) { URL.revokeObjectURL(previewUrl); previewUrl = null; }
    preview.hidden = true;
    form.dataset.recorded = "";
    startBtn.disabled = false;
    againBtn.disabled = true;
    state.textContent = "";
  });
  form.addEventListener("submit", function (e) {
    if (recorder && recorder.state === "recording") {
      e.preventDefault();
      state.textContent = "اول ضبط را تمام کنید.";
      return;
    }
    if (!fileInput.files || !fileInput.files.length) {
      e.preventDefault();
      state.textContent = "پاسخی ضبط یا انتخاب نشده است.";
      return;
    }
    document.getElementById("reply-send").disabled = true;
  });
}());
