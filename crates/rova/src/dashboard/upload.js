// Rova dashboard: image upload. Sends the chosen file's bytes as they are
// (not as a form) to /dashboard/images/upload, which streams them on to
// the image API, then reloads the list.
(function () {
  "use strict";
  var form = document.getElementById("upload");
  var state = document.getElementById("upload-state");
  if (!form) { return; }
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var file = form.elements.file.files[0];
    if (!file) { return; }
    var q = "name=" + encodeURIComponent(form.elements.name.value) +
      "&disk_format=" + encodeURIComponent(form.elements.disk_format.value);
    state.textContent = "Uploading " + file.size + " bytes…";
    form.querySelector("button").disabled = true;
    fetch("/dashboard/images/upload?" + q, {
      method: "PUT",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": form.getAttribute("data-csrf"), "Content-Type": "application/octet-stream" },
      body: file
    }).then(function (r) {
      return r.text().then(function (html) {
        if (r.ok) {
          window.location.reload();
        } else {
          state.innerHTML = html;
          form.querySelector("button").disabled = false;
        }
      });
    }).catch(function (err) {
      state.textContent = "The upload failed: " + err;
      form.querySelector("button").disabled = false;
    });
  });
}());
